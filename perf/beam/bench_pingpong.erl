%% pingpong workload (BENCHMARKS.md), BEAM side: two processes, 1,000,000
%% round trips (100,000 when quick). The benchmark process pings a spawned
%% echo process and waits for each reply. pingpong_rtt is ns per round trip.
%% The C side also echoes from a handler process (pingpong_handler_rtt); BEAM
%% has one kind of process, so that figure repeats the same measurement.
-module(bench_pingpong).
-export([main/1]).

main(Args) ->
    N = bench_util:scale(1000000, Args),
    Pong = spawn(fun pong/0),
    %% One warm-up round trip so the spawn is not in the timed loop.
    Pong ! {ping, self()},
    receive pong -> ok end,
    T0 = bench_util:now_us(),
    ping(N, Pong),
    T1 = bench_util:now_us(),
    Pong ! stop,
    Rtt = (T1 - T0) * 1000 / N,
    bench_util:figure(pingpong_rtt, Rtt, "ns", false),
    bench_util:figure(pingpong_handler_rtt, Rtt, "ns", false).

ping(0, _) -> ok;
ping(I, Pong) ->
    Pong ! {ping, self()},
    receive pong -> ok end,
    ping(I - 1, Pong).

pong() ->
    receive
        {ping, From} -> From ! pong, pong();
        stop -> ok
    end.
