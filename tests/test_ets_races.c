/* Races between two ETS calls that OTP serialises, checked by what they add
 * up to. take against update_counter: threads add 1 to one key's counter
 * (update_counter/4 with a default, so a taken key comes back at 1) while
 * another thread takes the key over and over and sums the counters it took;
 * at the end the sum plus what is left must be every add that reported
 * success. An add that found the record before a take unlinked it but
 * landed after the take's copy used to be reported done and lost. Set
 * (an 8-byte-or-shorter key, a long one) and ordered_set; foreign threads,
 * so the calls really overlap on two cores. Sizes shrink under sanitizers. */
#include <otter/testing.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#ifdef OT_SANITIZE
#define PER 20000
#else
#define PER 300000
#endif
#define NADD 2

typedef struct {
    ot_tab t;
    const char *key;
    size_t kl;
    _Atomic int done;
    int64_t taken; /* the taker's sum */
    int bad_rc;
} race;

static void *adder(void *p)
{
    race *r = p;
    int64_t zero = 0, res;
    for (int i = 0; i < PER; i++) {
        int rc = ot_ets_update_counter(r->t, r->key, r->kl, 0, 1, &zero, &res);
        if (rc) {
            r->bad_rc = rc;
            break;
        }
    }
    return NULL;
}

static int64_t take_sum(race *r)
{
    ot_ets_obj *o;
    size_t n;
    int64_t sum = 0;
    if (ot_ets_take(r->t, r->key, r->kl, &o, &n) != 0)
        return -1000000000;
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        memcpy(&v, o[i].val, 8);
        sum += v;
    }
    free(o);
    return sum;
}

static void *taker(void *p)
{
    race *r = p;
    while (!atomic_load(&r->done))
        r->taken += take_sum(r);
    return NULL;
}

static void run(int type, const char *key)
{
    ot_ets_opts o = {.type = type, .access = OT_ETS_PUBLIC};
    race r = {.t = ot_ets_new(NULL, &o), .key = key, .kl = strlen(key)};
    cr_assert(r.t.v, "ot_ets_new: %d", errno);
    pthread_t add[NADD], tk;
    cr_assert_eq(pthread_create(&tk, NULL, taker, &r), 0);
    for (int i = 0; i < NADD; i++)
        cr_assert_eq(pthread_create(&add[i], NULL, adder, &r), 0);
    for (int i = 0; i < NADD; i++)
        pthread_join(add[i], NULL);
    atomic_store(&r.done, 1);
    pthread_join(tk, NULL);
    cr_assert_eq(r.bad_rc, 0);
    int64_t total = r.taken + take_sum(&r);
    cr_assert_eq(total, (int64_t)NADD * PER, "(type %d, key %s: %lld adds lost)", type, key,
                 (long long)((int64_t)NADD * PER - total));
    cr_assert_eq(ot_ets_size(r.t), 0);
    cr_assert_eq(ot_ets_delete_table(r.t), 0);
}

Test(ets_races, take_keeps_every_counter_add_set_short_key, .timeout = 60)
{
    run(OT_ETS_SET, "k");
}

Test(ets_races, take_keeps_every_counter_add_set_long_key, .timeout = 60)
{
    run(OT_ETS_SET, "a key longer than sixteen bytes");
}

Test(ets_races, take_keeps_every_counter_add_ordered_set, .timeout = 60)
{
    run(OT_ETS_ORDERED_SET, "k");
}
