/* examples/chat_rooms end to end: the binary `make examples` builds (beside
 * this test's build folder) runs and prints exactly the transcript below:
 * rooms (gen_servers under a DynamicSupervisor) named through the Registry,
 * a second room of one name refused, one copy of each post per member
 * through the PubSub, a member gone with its process, a room's name free
 * once the room has stopped. */
#include <criterion/criterion.h>

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char expected[] = "opening lobby again: File exists\n"
                               "rooms: 2\n"
                               "could not join nowhere\n"
                               "lobby has 3 members, otp has 1\n"
                               "  alice sees [lobby] alice: hello everyone\n"
                               "  bob sees [lobby] alice: hello everyone\n"
                               "  carol sees [lobby] alice: hello everyone\n"
                               "  bob sees [otp] bob: gen_server or Agent?\n"
                               "carol left; lobby has 2 members\n"
                               "  alice sees [lobby] bob: bye carol\n"
                               "  bob sees [lobby] bob: bye carol\n"
                               "lobby closed; the name lobby is free\n";

Test(chat_rooms, transcript, .timeout = 120) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    cr_assert(n > 0);
    self[n] = 0;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/../examples/chat_rooms", dirname(self));
    cr_assert(access(path, X_OK) == 0, "%s not built (make examples)", path);
    FILE *p = popen(path, "r");
    cr_assert(p != NULL);
    static char out[4096];
    size_t len = fread(out, 1, sizeof out - 1, p);
    out[len] = 0;
    int st = pclose(p);
    cr_assert_str_eq(out, expected);
    cr_assert_eq(st, 0, "exit status %d", st);
}
