%% restart workload (BENCHMARKS.md), BEAM side: a one_for_one supervisor with
%% one permanent gen_server worker; the worker is killed (exit(Pid, kill)) and
%% restarted 100,000 times (10,000 when quick). Each worker's init tells the
%% benchmark process its pid, so one cycle is: kill, the supervisor sees the
%% EXIT, restarts the child, init runs and reports. restart_rate is
%% restarts/s. The restart intensity is set high enough never to trip.
-module(bench_restart).
-export([main/1]).
-export([init/1, handle_call/3, handle_cast/2, start_worker/1]).

main(Args) ->
    N = bench_util:scale(100000, Args),
    Self = self(),
    {ok, Sup} = supervisor:start_link(?MODULE, {sup, Self}),
    First = receive {started, P} -> P end,
    T0 = bench_util:now_us(),
    Last = cycles(First, N),
    T1 = bench_util:now_us(),
    true = is_pid(Last),
    bench_util:figure(restart_rate, N / ((T1 - T0) / 1.0e6), "restarts/s", true),
    unlink(Sup),
    exit(Sup, shutdown).

cycles(Pid, 0) -> Pid;
cycles(Pid, I) ->
    exit(Pid, kill),
    receive {started, New} -> cycles(New, I - 1) end.

start_worker(Bench) ->
    gen_server:start_link(?MODULE, {worker, Bench}, []).

%% init/1 serves both the supervisor (its flags and child spec) and the
%% worker gen_server.
init({sup, Bench}) ->
    Flags = #{strategy => one_for_one, intensity => 100000000, period => 1},
    Child = #{id => worker, start => {?MODULE, start_worker, [Bench]},
              restart => permanent, shutdown => brutal_kill, type => worker},
    {ok, {Flags, [Child]}};
init({worker, Bench}) ->
    Bench ! {started, self()},
    {ok, nil}.

handle_call(_, _From, St) -> {reply, ok, St}.
handle_cast(_, St) -> {noreply, St}.
