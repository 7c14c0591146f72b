%% timers workload (BENCHMARKS.md), BEAM side: arm N = 1,000,000 (100,000 when
%% quick) erlang:send_after timers to self with delays of 1000-2000 ms, cancel
%% every other one, receive the rest. Each timer's message carries its
%% deadline (arm time in µs plus the delay), so lateness = receive time -
%% deadline. Figures: timer_arm (arms/s), timer_cancel (cancels/s, the
%% synchronous erlang:cancel_timer/1, like ot_cancel_timer),
%% timer_late_max (ms, the worst lateness over all received timers). A timer
%% that fired before its cancel (only on a very slow machine) is received
%% and counted like the others.
-module(bench_timers).
-export([main/1]).

main(Args) ->
    N = bench_util:scale(1000000, Args),
    Self = self(),
    T0 = bench_util:now_us(),
    Refs = arm(0, N, Self, []),
    T1 = bench_util:now_us(),
    %% Refs is newest first: start the alternation so that, as on the C side,
    %% the timers with even indices are the cancelled ones.
    Cancelled = cancel(Refs, (N - 1) rem 2, 0),
    T2 = bench_util:now_us(),
    Late = collect(N - Cancelled, 0),
    bench_util:figure(timer_arm, N / ((T1 - T0) / 1.0e6), "arms/s", true),
    bench_util:figure(timer_cancel, ((N + 1) div 2) / ((T2 - T1) / 1.0e6), "cancels/s", true),
    bench_util:figure(timer_late_max, Late / 1000, "ms", false).

%% Delays spread evenly over 1000..2000 ms by a fixed stride, so both sides
%% arm the same sequence.
delay(I) -> 1000 + (I * 7919) rem 1001.

arm(N, N, _, Acc) -> Acc;
arm(I, N, Self, Acc) ->
    D = delay(I),
    Deadline = bench_util:now_us() + D * 1000,
    R = erlang:send_after(D, Self, {t, Deadline}),
    arm(I + 1, N, Self, [R | Acc]).

%% Cancels every other timer (phase 0: this one); returns how many were
%% still pending.
cancel([], _, C) -> C;
cancel([R | Rs], 0, C) ->
    case erlang:cancel_timer(R) of
        false -> cancel(Rs, 1, C);
        _ -> cancel(Rs, 1, C + 1)
    end;
cancel([_ | Rs], 1, C) -> cancel(Rs, 0, C).

collect(0, Max) -> Max;
collect(I, Max) ->
    receive
        {t, Deadline} ->
            L = bench_util:now_us() - Deadline,
            collect(I - 1, max(L, Max))
    end.
