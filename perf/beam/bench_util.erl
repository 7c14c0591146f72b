%% Helpers shared by the BEAM side of the benchmarks (perf/beam/bench_*.erl):
%% argument parsing, the FIGURE line protocol the runner (perf/run) reads, and
%% a monotonic clock. Every workload module exports main/1, called by the
%% runner with ["quick"] for the scaled-down run or [] for the full one.
-module(bench_util).
-export([quick/1, scale/2, figure/4, now_us/0, wait_process_count/1]).

%% True when the runner asked for the ~10x smaller run.
quick(Args) ->
    lists:any(fun(A) -> A =:= quick orelse A =:= "quick" end, Args).

%% N for a full run, N div 10 for a quick one.
scale(N, Args) ->
    case quick(Args) of
        true -> N div 10;
        false -> N
    end.

%% One result line: FIGURE <name> <value> <unit> <1 if higher is better>.
figure(Name, Value, Unit, HigherIsBetter) ->
    V = if
            is_integer(Value) -> integer_to_list(Value);
            true -> float_to_list(float(Value), [{decimals, 3}, compact])
        end,
    H = case HigherIsBetter of true -> "1"; false -> "0" end,
    io:format("FIGURE ~s ~s ~s ~s~n", [Name, V, Unit, H]).

now_us() ->
    erlang:monotonic_time(microsecond).

%% Waits until at most Count processes exist (processes that were told to
%% stop are gone). Polls every millisecond: the cost is bounded by 1 ms.
wait_process_count(Count) ->
    case erlang:system_info(process_count) =< Count of
        true -> ok;
        false ->
            receive after 1 -> ok end,
            wait_process_count(Count)
    end.
