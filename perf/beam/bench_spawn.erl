%% spawn workload (BENCHMARKS.md), BEAM side: spawn N = 1,000,000 processes
%% that each wait for one message, then stop them all (send each its message
%% and wait until every one has exited). spawn_rate counts the spawn phase
%% only; spawn_exit_rate the stop phase, from the first stop message to the
%% last exit. Bytes per process are the growth of erlang:memory(processes)
%% while all N are alive, divided by N (the spawner's list of pids, 16 B per
%% process, is included, as the C side's pid array is in its RSS). BEAM has
%% one kind of process, so the stackful figures repeat the same measurement.
-module(bench_spawn).
-export([main/1]).

main(Args) ->
    N = bench_util:scale(1000000, Args),
    Base = erlang:system_info(process_count),
    erlang:garbage_collect(),
    Mem0 = erlang:memory(processes),
    T0 = bench_util:now_us(),
    Pids = spawn_all(N, []),
    T1 = bench_util:now_us(),
    Mem1 = erlang:memory(processes),
    stop_all(Pids),
    bench_util:wait_process_count(Base),
    T2 = bench_util:now_us(),
    Rate = N / ((T1 - T0) / 1.0e6),
    Bytes = (Mem1 - Mem0) / N,
    bench_util:figure(spawn_rate, Rate, "spawns/s", true),
    bench_util:figure(spawn_bytes_per_proc, Bytes, "B", false),
    bench_util:figure(spawn_exit_rate, N / ((T2 - T1) / 1.0e6), "exits/s", true),
    bench_util:figure(spawn_stackful_rate, Rate, "spawns/s", true),
    bench_util:figure(spawn_stackful_warm_rate, Rate, "spawns/s", true),
    bench_util:figure(spawn_stackful_bytes_per_proc, Bytes, "B", false).

spawn_all(0, Acc) -> Acc;
spawn_all(I, Acc) -> spawn_all(I - 1, [spawn(fun waiter/0) | Acc]).

waiter() ->
    receive stop -> ok end.

stop_all([]) -> ok;
stop_all([P | Ps]) -> P ! stop, stop_all(Ps).
