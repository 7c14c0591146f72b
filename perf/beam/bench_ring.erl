%% ring workload (BENCHMARKS.md), BEAM side: 10,000 processes in a ring pass
%% a counter 1,000,000 hops (100,000 when quick). The clock runs from the
%% first send to the notice of the process that saw the counter reach zero;
%% building and tearing down the ring are not timed. ring_hops is hops/s.
%% The C side also runs a ring of handler processes (ring_handler_hops); BEAM
%% has one kind of process, so that figure repeats the same measurement.
-module(bench_ring).
-export([main/1]).

-define(PROCS, 10000).

main(Args) ->
    Hops = bench_util:scale(1000000, Args),
    Self = self(),
    %% Each member learns its successor from a link message, so the last
    %% one can point back to the first.
    First = spawn(fun() -> member_init(Self) end),
    Last = build(?PROCS - 1, First, Self),
    First ! {next, Last},
    T0 = bench_util:now_us(),
    First ! {token, Hops},
    receive done -> ok end,
    T1 = bench_util:now_us(),
    First ! stop,
    Rate = Hops / ((T1 - T0) / 1.0e6),
    bench_util:figure(ring_hops, Rate, "hops/s", true),
    bench_util:figure(ring_handler_hops, Rate, "hops/s", true).

%% Spawns I members, each forwarding to the one spawned before it; returns
%% the newest.
build(0, Prev, _Main) -> Prev;
build(I, Prev, Main) ->
    P = spawn(fun() -> member(Prev, Main) end),
    build(I - 1, P, Main).

member_init(Main) ->
    receive {next, Next} -> member(Next, Main) end.

member(Next, Main) ->
    receive
        {token, 0} ->
            Main ! done,
            member(Next, Main);
        {token, N} ->
            Next ! {token, N - 1},
            member(Next, Main);
        stop ->
            Next ! stop
    end.
