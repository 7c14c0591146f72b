%% call workload (BENCHMARKS.md), BEAM side: gen_server:call round trips to a
%% server that replies at once. call_rtt: one client, 1,000,000 calls (100,000
%% when quick), ns per call. call_4clients: 4 client processes together make
%% 1,000,000 calls in all against the same server, calls/s from a common start
%% signal to the last client's finish.
-module(bench_call).
-behaviour(gen_server).
-export([main/1]).
-export([init/1, handle_call/3, handle_cast/2]).

main(Args) ->
    N = bench_util:scale(1000000, Args),
    {ok, S} = gen_server:start_link(?MODULE, [], []),
    pong = gen_server:call(S, ping),
    T0 = bench_util:now_us(),
    calls(S, N),
    T1 = bench_util:now_us(),
    bench_util:figure(call_rtt, (T1 - T0) * 1000 / N, "ns", false),
    Self = self(),
    Per = N div 4,
    Clients = [spawn_link(fun() ->
                              receive go -> ok end,
                              calls(S, Per),
                              Self ! {done, self()}
                          end) || _ <- lists:seq(1, 4)],
    T2 = bench_util:now_us(),
    [C ! go || C <- Clients],
    [receive {done, C} -> ok end || C <- Clients],
    T3 = bench_util:now_us(),
    bench_util:figure(call_4clients, 4 * Per / ((T3 - T2) / 1.0e6), "calls/s", true),
    unlink(S),
    gen_server:stop(S).

calls(_, 0) -> ok;
calls(S, I) -> pong = gen_server:call(S, ping), calls(S, I - 1).

init([]) -> {ok, nil}.
handle_call(ping, _From, St) -> {reply, pong, St}.
handle_cast(_, St) -> {noreply, St}.
