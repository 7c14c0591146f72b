%% sock_echo workload, BEAM side: one loopback TCP connection, 100,000 round
%% trips of a 64-byte message (10,000 when quick). The client is in
%% {active, false} and recv's each echo; the server end is served by a
%% process in {active, false} looping recv/send (sock_echo_passive_rtt) and
%% then by one in {active, once} echoing each {tcp, S, Data} message and
%% re-arming (sock_echo_active_rtt). Figures are us per round trip. Then
%% 32-byte lines to a draining peer, one gen_tcp:send per line
%% (sock_send_line_rate) and one per iolist of 64 (sock_sendv_line_rate).
-module(bench_sock_echo).
-export([main/1]).

main(Args) ->
    N = bench_util:scale(100000, Args),
    Opts = [binary, {active, false}, {nodelay, true}, {reuseaddr, true}],
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}} | Opts]),
    {ok, Port} = inet:port(L),
    lists:foreach(
      fun({Mode, Name}) ->
              {ok, C} = gen_tcp:connect({127, 0, 0, 1}, Port, Opts),
              {ok, S} = gen_tcp:accept(L),
              Srv = spawn(fun() -> receive go -> serve(Mode, S) end end),
              ok = gen_tcp:controlling_process(S, Srv),
              Srv ! go,
              Msg = binary:copy(<<"x">>, 64),
              rtt(C, Msg, N div 10),
              T0 = bench_util:now_us(),
              rtt(C, Msg, N),
              T1 = bench_util:now_us(),
              bench_util:figure(Name, (T1 - T0) / N, "us", false),
              gen_tcp:close(C)
      end,
      [{passive, sock_echo_passive_rtt}, {once, sock_echo_active_rtt}]),
    lists:foreach(
      fun({Batch, Name}) ->
              {ok, C} = gen_tcp:connect({127, 0, 0, 1}, Port, Opts),
              {ok, S} = gen_tcp:accept(L),
              Total = (N * 10 div Batch) * Batch,
              Self = self(),
              D = spawn(fun() -> receive go -> drain(S, Total * 32), Self ! drained end end),
              ok = gen_tcp:controlling_process(S, D),
              D ! go,
              Line = <<(binary:copy(<<"l">>, 31))/binary, "\n">>,
              Msg = case Batch of 1 -> Line; _ -> lists:duplicate(Batch, Line) end,
              T0 = bench_util:now_us(),
              send_lines(C, Msg, Total div Batch),
              receive drained -> ok end,
              T1 = bench_util:now_us(),
              bench_util:figure(Name, Total * 1000000 / (T1 - T0), "lines/s", true),
              gen_tcp:close(C)
      end,
      [{1, sock_send_line_rate}, {64, sock_sendv_line_rate}]),
    gen_tcp:close(L).

send_lines(_, _, 0) -> ok;
send_lines(C, Msg, I) ->
    ok = gen_tcp:send(C, Msg),
    send_lines(C, Msg, I - 1).

drain(_, Left) when Left =< 0 -> ok;
drain(S, Left) ->
    {ok, D} = gen_tcp:recv(S, 0),
    drain(S, Left - byte_size(D)).

rtt(_, _, 0) -> ok;
rtt(C, Msg, I) ->
    ok = gen_tcp:send(C, Msg),
    {ok, _} = gen_tcp:recv(C, 64),
    rtt(C, Msg, I - 1).

serve(passive, S) ->
    case gen_tcp:recv(S, 0) of
        {ok, D} -> ok = gen_tcp:send(S, D), serve(passive, S);
        {error, _} -> gen_tcp:close(S)
    end;
serve(once, S) ->
    ok = inet:setopts(S, [{active, once}]),
    receive
        {tcp, S, D} -> ok = gen_tcp:send(S, D), serve(once, S);
        {tcp_closed, S} -> ok;
        {tcp_error, S, _} -> gen_tcp:close(S)
    end.
