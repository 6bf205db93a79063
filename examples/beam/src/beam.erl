%% beam: the example app of beamdeploy in Erlang, standard library only
%% (docs/protocol.md is all it relies on). bin/beam runs
%% `erl -noshell -pa ebin -s beam`, so the BEAM is the unit's main process.
%%
%% It serves HTTP/1.1 (beam_http; answers from beam_reply) on the listening
%% socket at fd 3 (LISTEN_FDS; standalone, on BEAM_LISTEN, default
%% 127.0.0.1:8080), sends READY=1 once it accepts, and on SIGTERM drains
%% like the Go SDK's Serve and exits 0. Its request count (beam_counter)
%% goes to the next instance through the handoff store (key beam.requests)
%% and survives in-place hot upgrades (beam_hot) in the process itself.
-module(beam).
-export([start/0, log/2]).

-define(ACCEPTORS, 4).
-define(COUNT_KEY, <<"beam.requests">>).

%% start is what erl -s runs: it starts the main process and returns.
start() ->
    spawn(fun main/0),
    ok.

log(Fmt, Args) ->
    io:format(standard_error, "beam: " ++ Fmt ++ "~n", Args).

main() ->
    register(beam, self()),
    process_flag(trap_exit, true),
    try
        LSock = listener(),
        beam_signal:install(self()),
        {ok, _} = beam_counter:start_link(),
        ets:new(beam_http_conns, [named_table, public, set]),
        Procs = start_acceptors(LSock, #{}, ?ACCEPTORS),
        Unit = os:getenv("BEAMDEPLOY_UNIT", ""),
        log("serving release ~s as ~s, pid ~s", [beam_reply:version(), Unit, os:getpid()]),
        ok = beam_notify:notify("READY=1"),
        Main = self(),
        managed() andalso spawn(fun() -> Main ! {cutover, beam_control:cutover(Unit)} end),
        managed() andalso beam_hot:start(Unit),
        loop(#{lsock => LSock, procs => Procs, inherited => not managed()})
    catch
        Class:Why:Stack ->
            log("fatal: ~p:~p ~p", [Class, Why, Stack]),
            erlang:halt(1)
    end.

managed() -> os:getenv("BEAMDEPLOY_SOCKET", "") =/= "".

%% listener opens the listening socket beamdeploy (or systemd) passed at
%% fd 3 as it is (no bind, no listen(2): it is shared), or a new one when
%% run standalone. The LISTEN_ variables are removed for child processes.
listener() ->
    Mine = os:getenv("LISTEN_PID") =:= os:getpid(),
    Fds = os:getenv("LISTEN_FDS"),
    [os:unsetenv(V) || V <- ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"]],
    case Mine andalso Fds =/= false andalso list_to_integer(Fds) >= 1 of
        true ->
            {ok, L} = socket:open(3, #{dup => false}),
            L;
        false ->
            {ok, {Addr, Port}} = parse_addr(os:getenv("BEAM_LISTEN", "127.0.0.1:8080")),
            {ok, L} = socket:open(inet, stream, tcp),
            ok = socket:setopt(L, {socket, reuseaddr}, true),
            ok = socket:bind(L, #{family => inet, addr => Addr, port => Port}),
            ok = socket:listen(L, 128),
            L
    end.

parse_addr(S) ->
    [Host, Port] = string:split(S, ":", trailing),
    {ok, Addr} = inet:parse_ipv4_address(Host),
    {ok, {Addr, list_to_integer(Port)}}.

start_acceptors(_LSock, Procs, 0) -> Procs;
start_acceptors(LSock, Procs, N) ->
    {Pid, _} = spawn_monitor(beam_http, acceptor, [LSock, {self(), fun beam_reply:reply/1}]),
    start_acceptors(LSock, Procs#{Pid => acceptor}, N - 1).

%% loop keeps ?ACCEPTORS processes accepting and tracks the connections
%% until SIGTERM.
loop(#{lsock := LSock, procs := Procs} = S) ->
    receive
        {accepted, Pid} ->
            loop(S#{procs := start_acceptors(LSock, Procs#{Pid => conn}, 1)});
        {'DOWN', _, process, Pid, Why} ->
            Why =/= normal andalso log("~p ~p ended: ~p", [maps:get(Pid, Procs, process), Pid, Why]),
            ets:delete(beam_http_conns, Pid),
            case maps:take(Pid, Procs) of
                {acceptor, Rest} -> loop(S#{procs := start_acceptors(LSock, Rest, 1)});
                {conn, Rest} -> loop(S#{procs := Rest});
                error -> loop(S)
            end;
        {cutover, {ok, _Peers}} ->
            loop(S#{inherited := inherit()});
        {cutover, {error, Why}} ->
            log("no cutover notice (~p): the request count is inherited at the drain", [Why]),
            loop(S);
        sigterm ->
            drain(S);
        {'EXIT', _, Why} -> % the counter
            exit(Why)
    end.

%% drain is the Go SDK's Serve drain: STOPPING=1; stop accepting on the
%% shared listening socket (never shutdown(2) it); requests in flight finish; further
%% responses close their connection; idle keep-alive connections stay open
%% until their client uses or closes them, or until the drain deadline.
%% Then the count goes to the handoff store and the VM exits 0.
drain(#{lsock := LSock, procs := Procs, inherited := Inherited}) ->
    Timeout = drain_timeout(),
    log("SIGTERM: draining ~b connections, at most ~b ms", [maps:size(Procs) - ?ACCEPTORS, Timeout]),
    beam_http:drain(),
    _ = beam_notify:notify("STOPPING=1"), % after the above: from here on, responses close
    %% Stop accepting, but do not close the listening socket: OTP's
    %% socket:close/1 puts a socket in blocking mode before it closes it,
    %% and the mode is shared with every process holding the socket (the
    %% next instance would block in accept). It closes when the VM exits.
    [Pid ! stop || {Pid, acceptor} <- maps:to_list(Procs)],
    Cut = wait_conns(Procs, erlang:monotonic_time(millisecond) + Timeout),
    Cut > 0 andalso log("drain deadline: cut ~b requests in flight", [Cut]),
    Inherited orelse inherit(),
    managed() andalso handover(),
    _ = LSock, % held open until here
    erlang:halt(0).

wait_conns(Procs, _Deadline) when map_size(Procs) =:= 0 -> 0;
wait_conns(Procs, Deadline) ->
    receive
        {'DOWN', _, process, Pid, _} ->
            ets:delete(beam_http_conns, Pid),
            wait_conns(maps:remove(Pid, Procs), Deadline);
        {accepted, _} ->
            wait_conns(Procs, Deadline)
    after max(0, Deadline - erlang:monotonic_time(millisecond)) ->
        Active = [P || P <- maps:keys(Procs), ets:lookup(beam_http_conns, P) =:= [{P, active}]],
        [exit(P, kill) || P <- maps:keys(Procs)],
        length(Active)
    end.

%% drain_timeout is the Go SDK's default: the stop timeout the parent
%% passes in BEAMDEPLOY_DRAIN_TIMEOUT less a quarter of it, at most 5 s,
%% so that the VM exits before systemd's SIGKILL; 20 s without it.
drain_timeout() ->
    case go_duration(os:getenv("BEAMDEPLOY_DRAIN_TIMEOUT", "")) of
        {ok, Stop} when Stop > 0 -> Stop - min(Stop div 4, 5000);
        _ -> 20000
    end.

%% go_duration parses Go's duration syntax ("30s", "1m30s", "500ms") into
%% milliseconds.
go_duration("") -> error;
go_duration(S) -> go_duration(S, 0).

go_duration("", Ms) -> {ok, Ms};
go_duration(S, Ms) ->
    case string:to_float(S) of
        {error, no_float} ->
            case string:to_integer(S) of
                {N, Rest} when is_integer(N) -> unit(N, Rest, Ms);
                _ -> error
            end;
        {F, Rest} -> unit(F, Rest, Ms)
    end.

unit(N, Rest, Ms) ->
    Units = [{"ns", 1.0e-6}, {"us", 1.0e-3}, {"\x{b5}s", 1.0e-3}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}],
    case [{U, F} || {U, F} <- Units, lists:prefix(U, Rest)] of
        [{U, F} | _] -> go_duration(lists:nthtail(length(U), Rest), Ms + round(N * F));
        [] -> error
    end.

%% inherit adds the count an earlier instance handed over and deletes
%% the key, so that no count is added twice. The main process calls it
%% once the cutover came (the old instance has stopped, so it wrote its
%% count while it drained), or at the latest when this instance drains
%% (a swap ends only once its old instance stopped, and one swap runs at a
%% time: whoever wrote the key is gone by then). A unit restarted by
%% systemd finds its own count. It returns whether the count was taken.
inherit() ->
    case beam_control:get_handoff(?COUNT_KEY) of
        {ok, V} ->
            N = binary_to_integer(V),
            ok = beam_counter:add(N),
            case beam_control:delete_handoff(?COUNT_KEY) of
                ok -> ok;
                {error, Why} -> log("delete the handed-over request count: ~p", [Why])
            end,
            log("inherited request count ~b", [N]),
            true;
        not_found ->
            true;
        {error, Why} ->
            log("read the handed-over request count: ~p", [Why]),
            false
    end.

%% handover writes the count for the next instance.
handover() ->
    N = beam_counter:count(),
    case beam_control:put_handoff(?COUNT_KEY, integer_to_binary(N)) of
        ok -> log("handed over request count ~b", [N]);
        {error, Why} -> log("hand over request count ~b: ~p", [N, Why])
    end.
