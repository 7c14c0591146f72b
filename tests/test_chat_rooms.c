/* examples/chat_rooms end to end: the binary `make examples` builds (beside
 * this test's build folder) runs and prints exactly the transcript below:
 * rooms (gen_servers under a DynamicSupervisor) named through the Registry,
 * a second room of one name refused, one copy of each post per member
 * through the PubSub, a member gone with its process, a room's name free
 * once the room has stopped. */
#include <criterion/criterion.h>

#include "support/example.h"

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
    static char out[4096];
    int st = ot_test_run_example("chat_rooms", out, sizeof out);
    cr_assert_neq(st, -1, "examples/chat_rooms not built (make examples)");
    cr_assert_str_eq(out, expected);
    cr_assert_eq(st, 0, "exit status %d", st);
}
