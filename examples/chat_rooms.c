/* Chat rooms named through a Registry, with a PubSub broadcast (Elixir's
 * Registry documentation, both halves). A room is a gen_server named through
 * the unique registry "chat_rooms" (OT_NAME_REGISTRY: Elixir's {:via,
 * Registry, {registry, name}}); users find a room by that name (a look-up
 * straight from the registry's tables), subscribe to its topic in the PubSub
 * "chat_pubsub", and cast posts to the room by name; the room broadcasts each
 * post to the topic: every member gets each post once, in the room's order. A
 * user that leaves (exits) drops out of the topic by itself, and a room that
 * stops frees its name. The registry, the PubSub and the rooms' dynamic
 * supervisor make the application tree, as the seed's does. main prints what each user
 * saw; tests/test_chat_rooms.c checks the output line by line. */
#include <otter.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { JOIN = OT_TAG_USER, JOINED, SAY, POST, NEWS, GOT, CLOSE };

#define TEXT_MAX 96

struct line {
    char who[16];
    char text[TEXT_MAX];
};

static ot_reg rooms, pubsub; /* set by main before any room or user runs */

static int topic_of(const char *room, char *buf, size_t cap) {
    return snprintf(buf, cap, "room:%s", room);
}

/* A room: a gen_server named through the registry ({:via, Registry, ...}),
 * broadcasting every post cast to it. */
struct room {
    char topic[32];
    size_t tlen;
};

static ot_gs_ret room_init(void *arg, void **state) {
    struct room *r = ot_alloc(sizeof *r);
    r->tlen = (size_t)topic_of(arg, r->topic, sizeof r->topic);
    *state = r;
    return ot_gs_ok();
}

static ot_gs_ret room_cast(void *state, const ot_msg *m) {
    struct room *r = state;
    if (m->tag == POST && m->size == sizeof(struct line))
        ot_pubsub_broadcast(pubsub, r->topic, r->tlen, NEWS, ot_msg_data(m), m->size);
    return ot_gs_ok();
}

static ot_gs_ret room_call(void *state, const ot_msg *req, ot_from from) {
    (void)state, (void)req, (void)from;
    return ot_gs_reply(NULL, 0);
}

static const ot_gen_server room_behaviour = {
    .name = "chat_room", .init = room_init, .handle_call = room_call, .handle_cast = room_cast};

static ot_name room_name(const char *name) {
    return (ot_name)OT_NAME_REGISTRY(rooms, name, strlen(name));
}

static int start_room(void *arg, ot_pid *out) { /* a child's start: start_link */
    ot_start_opts o = {.name = room_name(arg)};
    return ot_gen_server_start_link(&room_behaviour, arg, &o, out);
}

/* Rooms are temporary children of the DynamicSupervisor "room_sup". */
static int open_room(const char *name, ot_pid *p) {
    ot_child_spec c = {.start = start_room, .arg = (void *)name, .restart = OT_TEMPORARY};
    return ot_dynsup_start_child(ot_whereis("room_sup"), &c, p);
}

static const char *room_name_arg(const ot_msg *m) { return ot_msg_data(m); }

/* A user: a handler process (no stack between messages). */
struct user {
    char name[16];
    ot_pid main;
};

static int user(void *state, const ot_msg *m) {
    struct user *u = state;
    char topic[32];
    switch (m->tag) {
    case JOIN: { /* payload: the room's name */
        ot_name room = room_name(room_name_arg(m));
        int ok = ot_whereis_name(&room).v != 0;
        if (ok)
            ok = ot_pubsub_subscribe(pubsub, topic,
                                     (size_t)topic_of(room_name_arg(m), topic, sizeof topic)) == 0;
        return ot_send(u->main, JOINED, &ok, sizeof ok) < 0 ? -1 : 0;
    }
    case SAY: { /* payload: struct line, who = the room */
        struct line l;
        memcpy(&l, ot_msg_data(m), sizeof l);
        ot_name room = room_name(l.who);
        struct line post = l; /* room points into l.who */
        snprintf(post.who, sizeof post.who, "%s", u->name);
        return ot_cast_name(&room, POST, &post, sizeof post) == 0 ? 0 : -1;
    }
    case NEWS: { /* a post, broadcast by a room: tell main what we saw */
        struct line got[2];
        snprintf(got[0].who, sizeof got[0].who, "%s", u->name);
        memcpy(&got[1], ot_msg_data(m), sizeof got[1]);
        return ot_send(u->main, GOT, got, sizeof got) < 0 ? -1 : 0;
    }
    case CLOSE:
        return 1; /* leave: the subscription goes with the process */
    default:
        return 0;
    }
}

static ot_pid spawn_user(struct user *u, const char *name) {
    snprintf(u->name, sizeof u->name, "%s", name);
    u->main = ot_self();
    return ot_spawn_handler(user, u, NULL);
}

static void join(ot_pid u, const char *room_name) {
    ot_send(u, JOIN, room_name, strlen(room_name) + 1);
    ot_msg *m = ot_receive_tag(JOINED, 5000);
    int ok = m ? *(int *)ot_msg_data(m) : 0;
    ot_msg_free(m);
    if (!ok)
        printf("could not join %s\n", room_name);
}

static int by_user(const void *a, const void *b) {
    return strcmp(((const struct line *)a)->who, ((const struct line *)b)->who);
}

/* One user says something in a room; main waits for the members' copies
 * and prints them sorted by member, so the output does not depend on which
 * scheduler ran whom first. */
static void say(ot_pid u, const char *room_name, const char *text, size_t members) {
    struct line l;
    snprintf(l.who, sizeof l.who, "%s", room_name);
    snprintf(l.text, sizeof l.text, "%s", text);
    ot_send(u, SAY, &l, sizeof l);
    struct line seen[16][2];
    size_t n = 0;
    for (; n < members && n < 16; n++) {
        ot_msg *m = ot_receive_tag(GOT, 5000);
        if (!m)
            break;
        memcpy(seen[n], ot_msg_data(m), sizeof seen[n]);
        ot_msg_free(m);
    }
    qsort(seen, n, sizeof seen[0], by_user);
    for (size_t i = 0; i < n; i++)
        printf("  %s sees [%s] %s: %s\n", seen[i][0].who, room_name, seen[i][1].who,
               seen[i][1].text);
    if (ot_receive_tag(GOT, 50)) /* exactly one copy each: nothing more comes */
        printf("  an extra copy arrived\n");
}

static size_t members(const char *room_name) {
    char topic[32];
    int tl = topic_of(room_name, topic, sizeof topic);
    int n = ot_registry_count_match(pubsub, topic, (size_t)tl, NULL, NULL);
    return n > 0 ? (size_t)n : 0;
}

/* The application tree: the rooms' registry, the PubSub and the rooms'
 * supervisor, under the top supervisor (one_for_one). */
static int start_rooms_registry(void *arg, ot_pid *out) {
    return ot_registry_start_link("chat_rooms", OT_UNIQUE, 0, out);
}
static int start_pubsub(void *arg, ot_pid *out) {
    return ot_pubsub_start_link("chat_pubsub", 0, out);
}
static int start_room_sup(void *arg, ot_pid *out) {
    ot_dynsup_opts f = {0};
    ot_start_opts o = {.name = OT_NAME_LOCAL("room_sup")};
    return ot_dynsup_start_link(&f, &o, out);
}

static void main_proc(void *arg) {
    (void)arg;
    ot_child_spec tree[] = {
        {.id = "rooms", .start = start_rooms_registry, .type = OT_SUPERVISOR},
        {.id = "pubsub", .start = start_pubsub, .type = OT_SUPERVISOR},
        {.id = "room_sup", .start = start_room_sup, .type = OT_SUPERVISOR},
    };
    ot_sup_flags flags = {.strategy = OT_ONE_FOR_ONE};
    ot_pid top;
    int rc = ot_application_start(&flags, tree, 3, NULL, &top);
    if (rc) {
        printf("could not start the application: %s\n", ot_strerror(rc));
        ot_exit_self(ot_reason_error("start"));
    }
    rooms = ot_registry_whereis("chat_rooms");
    pubsub = ot_registry_whereis("chat_pubsub");

    ot_pid lobby, otp, again;
    if (open_room("lobby", &lobby) || open_room("otp", &otp))
        printf("could not open the rooms\n");
    rc = open_room("lobby", &again); /* the name is taken */
    printf("opening lobby again: %s\n", ot_strerror(rc));
    printf("rooms: %zu\n", ot_registry_count(rooms));

    static struct user us[3];
    ot_pid alice = spawn_user(&us[0], "alice"), bob = spawn_user(&us[1], "bob"),
           carol = spawn_user(&us[2], "carol");
    join(alice, "lobby");
    join(bob, "lobby");
    join(carol, "lobby");
    join(bob, "otp");
    join(carol, "nowhere");
    printf("lobby has %zu members, otp has %zu\n", members("lobby"), members("otp"));

    say(alice, "lobby", "hello everyone", members("lobby"));
    say(bob, "otp", "gen_server or Agent?", members("otp"));

    /* carol leaves: her subscription goes with her */
    ot_ref m = ot_monitor(carol);
    ot_send(carol, CLOSE, NULL, 0);
    ot_msg *d = ot_receive_ref(m, OT_INFINITY);
    ot_msg_free(d);
    printf("carol left; lobby has %zu members\n", members("lobby"));
    say(bob, "lobby", "bye carol", members("lobby"));

    /* the lobby closes: its name is free again */
    ot_dynsup_terminate_child(ot_whereis("room_sup"), lobby);
    ot_name ln = room_name("lobby");
    printf("lobby closed; the name lobby is %s\n", ot_whereis_name(&ln).v ? "still taken" : "free");
    ot_send(alice, CLOSE, NULL, 0);
    ot_send(bob, CLOSE, NULL, 0);
    ot_application_stop(); /* the rooms, then the PubSub and the registry */
}

int main(void) {
    return ot_run(main_proc, NULL, NULL) == 0 ? 0 : 1;
}
