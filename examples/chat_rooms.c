/* Chat rooms named through a Registry, with a PubSub broadcast (Elixir's
 * Registry documentation, both halves). A room is a process that registers
 * itself under its name in the unique registry "chat_rooms"; users find a
 * room by name (a look-up straight from the registry's tables), subscribe to
 * its topic in the PubSub "chat_pubsub", and post to the room, which
 * broadcasts each post to the topic: every member gets each post once, in
 * the room's order. A user that leaves (exits) drops out of the topic by
 * itself, and a room that closes frees its name. main prints what each user
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

/* A room: named through the registry, broadcasting every post it gets. */
static void room(void *arg) {
    const char *name = arg;
    ot_pid holder;
    if (ot_registry_register(rooms, name, strlen(name), NULL, 0, &holder) != 0)
        ot_exit_self(ot_reason_error("room %s is taken", name));
    char topic[32];
    int tl = topic_of(name, topic, sizeof topic);
    for (;;) {
        ot_msg *m = ot_receive(OT_INFINITY);
        if (m->tag == POST && m->size == sizeof(struct line))
            ot_pubsub_broadcast(pubsub, topic, (size_t)tl, NEWS, ot_msg_data(m), m->size);
        bool close = m->tag == CLOSE;
        ot_msg_free(m);
        if (close)
            return;
    }
}

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
        const char *room_name = ot_msg_data(m);
        int ok = ot_registry_whereis_name(rooms, room_name, strlen(room_name)).v != 0;
        if (ok)
            ok = ot_pubsub_subscribe(pubsub, topic,
                                     (size_t)topic_of(room_name, topic, sizeof topic)) == 0;
        return ot_send(u->main, JOINED, &ok, sizeof ok) < 0 ? -1 : 0;
    }
    case SAY: { /* payload: struct line, who = the room */
        struct line l;
        memcpy(&l, ot_msg_data(m), sizeof l);
        ot_pid r = ot_registry_whereis_name(rooms, l.who, strlen(l.who));
        snprintf(l.who, sizeof l.who, "%s", u->name);
        return r.v && ot_send(r, POST, &l, sizeof l) == 0 ? 0 : -1;
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

static void main_proc(void *arg) {
    (void)arg;
    ot_pid p;
    if (ot_registry_start_link("chat_rooms", OT_UNIQUE, 0, &p) ||
        ot_pubsub_start_link("chat_pubsub", 0, &p)) {
        printf("could not start the registries\n");
        ot_exit_self(ot_reason_error("start"));
    }
    rooms = ot_registry_whereis("chat_rooms");
    pubsub = ot_registry_whereis("chat_pubsub");

    static char lobby[] = "lobby", otp[] = "otp";
    ot_ref lobby_mon = ot_monitor(ot_spawn(room, lobby));
    ot_spawn(room, otp);
    while (!ot_registry_whereis_name(rooms, "lobby", 5).v ||
           !ot_registry_whereis_name(rooms, "otp", 3).v)
        ot_sleep(1); /* the rooms register themselves */
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
    ot_send(ot_registry_whereis_name(rooms, "lobby", 5), CLOSE, NULL, 0);
    d = ot_receive_ref(lobby_mon, OT_INFINITY);
    ot_msg_free(d);
    printf("lobby closed; the name lobby is %s\n",
           ot_registry_whereis_name(rooms, "lobby", 5).v ? "still taken" : "free");
    ot_send(ot_registry_whereis_name(rooms, "otp", 3), CLOSE, NULL, 0);
    ot_send(alice, CLOSE, NULL, 0);
    ot_send(bob, CLOSE, NULL, 0);
}

int main(void) {
    return ot_run(main_proc, NULL, NULL) == 0 ? 0 : 1;
}
