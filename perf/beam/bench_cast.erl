%% cast workload (BENCHMARKS.md), BEAM side: 1,000,000 gen_server:cast
%% increments (100,000 when quick) to a counter server, then one call reads
%% the count (checked). cast_rate is casts/s over the casts and that call.
-module(bench_cast).
-behaviour(gen_server).
-export([main/1]).
-export([init/1, handle_call/3, handle_cast/2]).

main(Args) ->
    N = bench_util:scale(1000000, Args),
    {ok, S} = gen_server:start_link(?MODULE, [], []),
    0 = gen_server:call(S, count),
    T0 = bench_util:now_us(),
    casts(S, N),
    N = gen_server:call(S, count, infinity),
    T1 = bench_util:now_us(),
    bench_util:figure(cast_rate, N / ((T1 - T0) / 1.0e6), "casts/s", true),
    unlink(S),
    gen_server:stop(S).

casts(_, 0) -> ok;
casts(S, I) -> gen_server:cast(S, incr), casts(S, I - 1).

init([]) -> {ok, 0}.
handle_call(count, _From, C) -> {reply, C, C}.
handle_cast(incr, C) -> {noreply, C + 1}.
