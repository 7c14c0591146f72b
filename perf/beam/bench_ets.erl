%% ets_read and ets_write workloads (BENCHMARKS.md), BEAM side, the same work
%% as perf/ets.c; every figure is ops/s.
%% ets_read: a set with read_concurrency holding 100,000 integer keys with
%% integer (8-byte) values; 2 processes do 5,000,000 ets:lookup/2 calls in all
%% (2,500,000 each), from a common start signal to the last one's finish. The
%% C side draws keys from xorshift64; here a key walks the key space by a
%% stride prime to it (k := (k + 7919) rem 100,000, the two processes starting
%% half way round from each other), which visits keys as scattered as random
%% ones would be after hashing without making BEAM do 64-bit bignum
%% arithmetic. BEAM has only the copying lookup, so ets_lookup and ets_read
%% are the same measurement.
%% ets_write: 1,000,000 ets:insert/2 of distinct integer keys by one process
%% into a fresh public set with write_concurrency (ets_insert); then 2
%% processes do 1,000,000 ets:update_counter/3 on one key in all
%% (ets_update_counter), checked against the final count.
%% Quick runs do a tenth of each count (the table keeps 100,000 keys).
-module(bench_ets).
-export([main/1]).

-define(KEYS, 100000).

main(Args) ->
    Lookups = bench_util:scale(5000000, Args),
    Inserts = bench_util:scale(1000000, Args),
    Updates = bench_util:scale(1000000, Args),
    R = read_bench(Lookups),
    bench_util:figure(ets_lookup, R, "ops/s", true),
    bench_util:figure(ets_read, R, "ops/s", true),
    {I, U} = write_bench(Inserts, Updates),
    bench_util:figure(ets_insert, I, "ops/s", true),
    bench_util:figure(ets_update_counter, U, "ops/s", true).

read_bench(Lookups) ->
    T = ets:new(bench_read, [set, public, {read_concurrency, true}]),
    fill(T, 0),
    Per = Lookups div 2,
    Rate = together([fun() -> lookups(T, 0, Per) end,
                     fun() -> lookups(T, ?KEYS div 2, Per) end], Lookups),
    ets:delete(T),
    Rate.

fill(_, ?KEYS) -> ok;
fill(T, K) -> ets:insert(T, {K, K * 2}), fill(T, K + 1).

lookups(_, _, 0) -> ok;
lookups(T, K, I) ->
    [{_, _}] = ets:lookup(T, K),
    lookups(T, (K + 7919) rem ?KEYS, I - 1).

write_bench(Inserts, Updates) ->
    T = ets:new(bench_write, [set, public, {write_concurrency, true}]),
    T0 = bench_util:now_us(),
    inserts(T, 0, Inserts),
    T1 = bench_util:now_us(),
    InsertRate = Inserts / ((T1 - T0) / 1.0e6),
    ets:insert(T, {hot, 0}),
    Per = Updates div 2,
    UpdateRate = together([fun() -> updates(T, Per) end,
                           fun() -> updates(T, Per) end], Updates),
    [{hot, Count}] = ets:lookup(T, hot),
    Count = 2 * Per,
    ets:delete(T),
    {InsertRate, UpdateRate}.

inserts(_, N, N) -> ok;
inserts(T, K, N) -> ets:insert(T, {K, K}), inserts(T, K + 1, N).

updates(_, 0) -> ok;
updates(T, I) -> ets:update_counter(T, hot, 1), updates(T, I - 1).

%% Runs each fun in its own process from one start signal; returns Ops per
%% second from the signal to the last finish.
together(Funs, Ops) ->
    Self = self(),
    Pids = [spawn_link(fun() ->
                           receive go -> ok end,
                           F(),
                           Self ! {done, self()}
                       end) || F <- Funs],
    T0 = bench_util:now_us(),
    [P ! go || P <- Pids],
    [receive {done, P} -> ok end || P <- Pids],
    T1 = bench_util:now_us(),
    Ops / ((T1 - T0) / 1.0e6).
