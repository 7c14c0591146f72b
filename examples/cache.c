/* The seed's cache behind its public API: cache_put and cache_get talk to a
 * gen_server that holds a hash table in its own heap; the server's name is
 * optional (NULL: "cache"), as a module's default name in Elixir. A get for a
 * missing key is -ENOENT; a call after its timeout never leaves a late reply
 * behind (gen_server's aliases), which the hand-written version did. */
#include <otter.h>
#include <stdio.h>
#include <string.h>

#define CACHE_DEFAULT "cache"
#define NBUCKETS 64
enum { PUT = OT_TAG_USER, GET };

struct entry {
    struct entry *next;
    size_t klen, vlen;
    char kv[]; /* key, then value */
};

static unsigned bucket(const char *k, size_t n) {
    unsigned h = 2166136261u;
    while (n--)
        h = (h ^ (unsigned char)*k++) * 16777619u;
    return h % NBUCKETS;
}

static ot_gs_ret init(void *arg, void **state) {
    *state = ot_calloc(NBUCKETS, sizeof(struct entry *));
    return *state ? ot_gs_ok() : ot_gs_stop(ot_reason_error("no memory"));
}

static struct entry **find(struct entry **tab, const char *k, size_t klen) {
    struct entry **e = &tab[bucket(k, klen)];
    while (*e && ((*e)->klen != klen || memcmp((*e)->kv, k, klen) != 0))
        e = &(*e)->next;
    return e;
}

/* PUT's payload: key length (size_t), key, value */
static ot_gs_ret handle_cast(void *state, const ot_msg *m) {
    const char *p = ot_msg_data(m);
    size_t klen;
    memcpy(&klen, p, sizeof klen);
    const char *k = p + sizeof klen, *v = k + klen;
    size_t vlen = m->size - sizeof klen - klen;
    struct entry **e = find(state, k, klen), *old = *e;
    struct entry *n = ot_alloc(sizeof *n + klen + vlen);
    n->next = old ? old->next : NULL;
    n->klen = klen;
    n->vlen = vlen;
    memcpy(n->kv, k, klen);
    memcpy(n->kv + klen, v, vlen);
    *e = n;
    ot_free(old);
    return ot_gs_ok();
}

static ot_gs_ret handle_call(void *state, const ot_msg *m, ot_from from) {
    struct entry *e = *find(state, ot_msg_data(m), m->size);
    if (!e)
        return ot_gs_reply(NULL, 0);              /* an empty reply: not found */
    return ot_gs_reply(e->kv + e->klen, e->vlen); /* the entry outlives the callback */
}

static const ot_gen_server cache_server = {
    .name = "cache", .init = init, .handle_call = handle_call, .handle_cast = handle_cast};

/* ---- the public API ---------------------------------------------------------- */

int cache_start_link(const char *name, ot_pid *out) {
    ot_start_opts o = {.name = OT_NAME_LOCAL(name ? name : CACHE_DEFAULT)};
    return ot_gen_server_start_link(&cache_server, NULL, &o, out);
}

int cache_put(const char *name, const char *key, const char *val) {
    size_t klen = strlen(key), vlen = strlen(val);
    char buf[512];
    if (sizeof klen + klen + vlen > sizeof buf)
        return -EMSGSIZE;
    memcpy(buf, &klen, sizeof klen);
    memcpy(buf + sizeof klen, key, klen);
    memcpy(buf + sizeof klen + klen, val, vlen);
    ot_name n = OT_NAME_LOCAL(name ? name : CACHE_DEFAULT);
    return ot_cast_name(&n, PUT, buf, sizeof klen + klen + vlen);
}

/* Copies the value (NUL-terminated, truncated to cap) into val. */
int cache_get(const char *name, const char *key, char *val, size_t cap) {
    ot_name n = OT_NAME_LOCAL(name ? name : CACHE_DEFAULT);
    ot_msg *r;
    int rc = ot_call_name(&n, GET, key, strlen(key), &r, 5000);
    if (rc < 0)
        return rc;
    if (r->size == 0) {
        ot_msg_free(r);
        return -ENOENT;
    }
    snprintf(val, cap, "%.*s", (int)r->size, (const char *)ot_msg_data(r));
    ot_msg_free(r);
    return 0;
}

/* ---- a session with it -------------------------------------------------------- */

static void show(const char *name, const char *key) {
    char v[64];
    int rc = cache_get(name, key, v, sizeof v);
    printf("%s[%s] = %s\n", name ? name : CACHE_DEFAULT, key, rc == 0 ? v : ot_strerror(rc));
}

static void client(void *arg) {
    char k[16], v[16];
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "k%d", i);
        snprintf(v, sizeof v, "v%d", i * (int)(intptr_t)arg);
        cache_put(NULL, k, v);
    }
}

static void main_proc(void *arg) {
    ot_otp_rules(0, 0); /* a short demo: no supervisor tree */
    ot_pid c, s;
    cache_start_link(NULL, &c);
    cache_start_link("sessions", &s);
    cache_put(NULL, "lang", "C");
    cache_put("sessions", "alice", "token-1");
    show(NULL, "lang");
    show("sessions", "alice");
    show(NULL, "alice");
    show("nowhere", "x");
    cache_put(NULL, "lang", "C11");
    show(NULL, "lang");
    ot_ref mon;
    ot_spawn_opt(client, (void *)(intptr_t)7,
                 &(ot_spawn_opts){.monitor = true, .monitor_ref = &mon});
    ot_msg_free(ot_receive_ref(mon, OT_INFINITY));
    show(NULL, "k42");
    printf("start again: %s\n", ot_strerror(cache_start_link(NULL, &s)));
}

int main(void) {
    return ot_run(main_proc, NULL, NULL) == 0 ? 0 : 1;
}
