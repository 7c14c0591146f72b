/* The seed's application tree: a Registry, a PubSub, a DynamicSupervisor of
 * rooms and the cache, under one top supervisor (rest_for_one: what comes
 * later depends on what comes before, so a new Registry restarts the rooms
 * that were registered in the old one; the cache depends on nothing and comes
 * last, so its restarts touch nothing else). The cache is a gen_server with
 * a public API (cache_put, cache_get) and a local name; a room is a
 * gen_server started by id under the rooms supervisor, named through the
 * Registry ("room:ID"), that broadcasts each post to its PubSub topic. Kill
 * any worker and it comes back under the same name: main shows it, and
 * tests/test_app_tree.c does it at random (it includes this file with
 * APP_TREE_NO_MAIN). */
#include <otter.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PUT = OT_TAG_USER, GET, POST, POSTS, NEWS };

#define KEY_MAX 32
#define VAL_MAX 64

/* ---- the cache: a gen_server behind a public API ------------------------------ */

struct entry {
    char key[KEY_MAX], val[VAL_MAX];
};

struct cache {
    struct entry *e;
    size_t n, cap;
};

static ot_gs_ret cache_init(void *arg, void **state) {
    (void)arg;
    struct cache *c = ot_calloc(1, sizeof *c);
    if (!c)
        return ot_gs_stop(ot_reason_error("no memory"));
    *state = c;
    return ot_gs_ok();
}

static struct entry *find(struct cache *c, const char *key) {
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->e[i].key, key) == 0)
            return &c->e[i];
    return NULL;
}

static ot_gs_ret cache_call(void *state, const ot_msg *req, ot_from from) {
    (void)from;
    struct cache *c = state;
    const struct entry *in = ot_msg_data(req);
    if (req->size != sizeof *in)
        return ot_gs_reply(NULL, 0);
    struct entry *e = find(c, in->key);
    if (req->tag == GET)
        return e ? ot_gs_reply(e->val, strlen(e->val) + 1) : ot_gs_reply(NULL, 0);
    if (!e) {
        if (c->n == c->cap) {
            size_t cap = c->cap ? 2 * c->cap : 16;
            struct entry *g = ot_realloc(c->e, cap * sizeof *g);
            if (!g)
                return ot_gs_reply(NULL, 0);
            c->e = g;
            c->cap = cap;
        }
        e = &c->e[c->n++];
    }
    *e = *in;
    return ot_gs_reply("ok", 3);
}

static const ot_gen_server cache_behaviour = {
    .name = "cache", .init = cache_init, .handle_call = cache_call};

static int cache_start(void *arg, ot_pid *out) {
    (void)arg;
    ot_start_opts o = {.name = OT_NAME_LOCAL("cache")};
    return ot_gen_server_start_link(&cache_behaviour, NULL, &o, out);
}

/* The public API: the server's name is optional (NULL: "cache"), as in the seed. */
int cache_put(const char *server, const char *key, const char *val) {
    struct entry in = {{0}, {0}};
    snprintf(in.key, sizeof in.key, "%s", key);
    snprintf(in.val, sizeof in.val, "%s", val);
    ot_name n = OT_NAME_LOCAL(server ? server : "cache");
    ot_msg *r;
    int rc = ot_call_name(&n, PUT, &in, sizeof in, &r, 5000);
    if (rc == 0)
        ot_msg_free(r);
    return rc;
}

/* Copies the value into buf: 0, -ENOENT when the key is not there, or the call's error. */
int cache_get(const char *server, const char *key, char *buf, size_t cap) {
    struct entry in = {{0}, {0}};
    snprintf(in.key, sizeof in.key, "%s", key);
    ot_name n = OT_NAME_LOCAL(server ? server : "cache");
    ot_msg *r;
    int rc = ot_call_name(&n, GET, &in, sizeof in, &r, 5000);
    if (rc < 0)
        return rc;
    rc = r->size ? 0 : -ENOENT;
    if (r->size)
        snprintf(buf, cap, "%s", (const char *)ot_msg_data(r));
    ot_msg_free(r);
    return rc;
}

/* ---- rooms: gen_servers named through the Registry, broadcasting posts ---------- */

struct room {
    char topic[KEY_MAX + 8];
    int posts;
};

static ot_gs_ret room_init(void *arg, void **state) {
    struct room *r = ot_calloc(1, sizeof *r);
    if (!r)
        return ot_gs_stop(ot_reason_error("no memory"));
    snprintf(r->topic, sizeof r->topic, "room:%s", (const char *)arg);
    *state = r;
    return ot_gs_ok();
}

static ot_gs_ret room_call(void *state, const ot_msg *req, ot_from from) {
    (void)from;
    struct room *r = state;
    if (req->tag == POST) {
        ot_reg ps = ot_registry_whereis("app_pubsub");
        ot_pubsub_broadcast(ps, r->topic, strlen(r->topic), NEWS, ot_msg_data(req), req->size);
        r->posts++;
    }
    return ot_gs_reply(&r->posts, sizeof r->posts);
}

static const ot_gen_server room_behaviour = {
    .name = "room", .init = room_init, .handle_call = room_call};

static int room_start(void *arg, ot_pid *out) {
    const char *id = arg;
    char key[KEY_MAX + 8];
    int kl = snprintf(key, sizeof key, "room:%s", id);
    ot_start_opts o = {.name = OT_NAME_REGISTRY(ot_registry_whereis("app_registry"), key,
                                                (size_t)kl)};
    return ot_gen_server_start_link(&room_behaviour, (void *)id, &o, out);
}

/* Starts room id under the rooms supervisor (id must outlive the room). */
int room_open(const char *id, ot_pid *out) {
    ot_child_spec c = {.start = room_start, .arg = (void *)id, .restart = OT_PERMANENT};
    return ot_dynsup_start_child(ot_whereis("rooms_sup"), &c, out);
}

ot_pid room_whereis(const char *id) {
    char key[KEY_MAX + 8];
    int kl = snprintf(key, sizeof key, "room:%s", id);
    return ot_registry_whereis_name(ot_registry_whereis("app_registry"), key, (size_t)kl);
}

/* Posts text to room id; the number of posts the room has seen, or -errno. */
int room_post(const char *id, const char *text) {
    char key[KEY_MAX + 8];
    int kl = snprintf(key, sizeof key, "room:%s", id);
    ot_name n = OT_NAME_REGISTRY(ot_registry_whereis("app_registry"), key, (size_t)kl);
    ot_msg *r;
    int rc = ot_call_name(&n, POST, text, strlen(text) + 1, &r, 5000);
    if (rc < 0)
        return rc;
    int posts;
    memcpy(&posts, ot_msg_data(r), sizeof posts);
    ot_msg_free(r);
    return posts;
}

/* ---- the tree ------------------------------------------------------------------ */

static int registry_start(void *arg, ot_pid *out) {
    (void)arg;
    return ot_registry_start_link("app_registry", OT_UNIQUE, 0, out);
}

static int pubsub_start(void *arg, ot_pid *out) {
    (void)arg;
    return ot_pubsub_start_link("app_pubsub", 0, out);
}

static int max_r; /* for the rooms supervisor as for the top */

static int rooms_start(void *arg, ot_pid *out) {
    (void)arg;
    ot_start_opts o = {.name = OT_NAME_LOCAL("rooms_sup")};
    ot_dynsup_opts d = {.max_restarts = max_r, .max_seconds = max_r ? 5 : 0};
    return ot_dynsup_start_link(&d, &o, out);
}

/* max_restarts: the seed's tree takes Elixir's 3 in 5 s (0); a test that
 * kills at random gives it, and the rooms supervisor, more. */
int app_tree_start(int max_restarts, ot_pid *top) {
    max_r = max_restarts;
    ot_child_spec cs[] = {
        {.id = "registry", .start = registry_start, .type = OT_SUPERVISOR},
        {.id = "pubsub", .start = pubsub_start, .type = OT_SUPERVISOR},
        {.id = "rooms", .start = rooms_start, .type = OT_SUPERVISOR},
        {.id = "cache", .start = cache_start},
    };
    ot_sup_flags f = {.strategy = OT_REST_FOR_ONE, .max_restarts = max_restarts,
                      .max_seconds = max_restarts ? 5 : 0};
    return ot_application_start(&f, cs, sizeof cs / sizeof cs[0], NULL, top);
}

#ifndef APP_TREE_NO_MAIN
static ot_pid wait_new(ot_pid (*lookup)(const char *), const char *name, ot_pid old) {
    for (int i = 0; i < 5000; i++) {
        ot_pid p = lookup(name);
        if (p.v && p.v != old.v)
            return p;
        ot_sleep(1);
    }
    return OT_NOPID;
}

static void main_proc(void *arg) {
    (void)arg;
    ot_pid top, lobby;
    if (app_tree_start(0, &top) != 0 || room_open("lobby", &lobby) != 0) {
        printf("the tree did not start\n");
        return;
    }
    ot_reg ps = ot_registry_whereis("app_pubsub");
    ot_pubsub_subscribe(ps, "room:lobby", 10);
    cache_put(NULL, "greeting", "hello");
    char v[VAL_MAX];
    printf("cache: greeting = %s\n", cache_get(NULL, "greeting", v, sizeof v) == 0 ? v : "?");
    printf("lobby: %d post(s)\n", room_post("lobby", "first!"));
    ot_msg *m = ot_receive_tag(NEWS, 5000);
    printf("news: %s\n", m ? (const char *)ot_msg_data(m) : "none");
    ot_msg_free(m);
    /* kill the cache and the room: both come back under their names */
    ot_pid cache = ot_whereis("cache");
    ot_exit(cache, OT_REASON(OT_KILL));
    ot_exit(lobby, OT_REASON(OT_KILL));
    ot_pid c2 = wait_new(ot_whereis, "cache", cache);
    ot_pid l2 = wait_new(room_whereis, "lobby", lobby);
    printf("cache back under its name: %s\n", c2.v ? "yes" : "no");
    printf("lobby back under its name: %s\n", l2.v ? "yes" : "no");
    printf("cache after a restart: greeting %s\n",
           cache_get(NULL, "greeting", v, sizeof v) == -ENOENT ? "gone (state is not kept)" : v);
    printf("lobby: %d post(s)\n", room_post("lobby", "again"));
}

int main(void) {
    return ot_run(main_proc, NULL, NULL) == 0 ? 0 : 1;
}
#endif
