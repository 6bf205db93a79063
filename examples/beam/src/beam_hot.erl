%% beam_hot: in-place hot upgrades (docs/protocol.md, mode in_place). The
%% process long-polls the parent for an order; on one it loads the new
%% release's changed modules from its ebin directory into this very VM,
%% has the counter's state carried over by code_change/3, and reports.
-module(beam_hot).
-export([start/1, poll/2]).

%% The poll answers within 10 minutes (204: poll again).
-define(POLL_TIMEOUT, 11 * 60000).

start(Unit) -> spawn(?MODULE, poll, [Unit, 0]).

%% poll waits for one order, carries it out and polls again (a fully
%% qualified call: the loop runs the newest code of this module). After a
%% failed poll (the parent restarts, say) it polls again a second later,
%% and says so on the first failure and then every minute.
poll(Unit, Failed) ->
    Answer = beam_control:request(get, ["/v1/hot/wait?", uri_string:compose_query([{"unit", Unit}])], <<>>, ?POLL_TIMEOUT),
    case Answer of
        {ok, 204, _} -> ?MODULE:poll(Unit, 0);
        {ok, 200, Body} -> order(Body), ?MODULE:poll(Unit, 0);
        _ ->
            Failed rem 60 =:= 0 andalso beam:log("hot-upgrade poll failed: ~p; polling again every second", [Answer]),
            timer:sleep(1000),
            ?MODULE:poll(Unit, Failed + 1)
    end.

order(Body) ->
    case beam_json:decode(Body) of
        {ok, #{<<"id">> := Id} = Order} ->
            beam:log("hot-upgrade order ~s: release ~s, mode ~s",
                     [Id, maps:get(<<"release">>, Order, <<"?">>), maps:get(<<"mode">>, Order, <<"successor">>)]),
            report(Id, upgrade(Order), maps:get(<<"timeout_ns">>, Order, 60000000000));
        _ ->
            beam:log("hot-upgrade order unreadable, ignored: ~s", [Body])
    end.

upgrade(#{<<"mode">> := <<"in_place">>, <<"dir">> := Dir, <<"release">> := Rel}) ->
    _ = beam_notify:notify(["RELOADING=1\nMONOTONIC_USEC=", integer_to_binary(beam_notify:monotonic_usec())]),
    Result = load(Dir, Rel),
    _ = beam_notify:notify("READY=1"), % also after a failure: the old code keeps serving
    Result;
upgrade(#{<<"mode">> := Mode}) ->
    {error, io_lib:format("this app upgrades in place only, not in mode ~s: declare \"hot\": \"in_place\" in beamdeploy.json", [Mode])};
upgrade(_) ->
    {error, "this app upgrades in place only: declare \"hot\": \"in_place\" in beamdeploy.json"}.

report(Id, Result, TimeoutNs) ->
    Report = case Result of
                 ok -> #{id => Id, ok => true, pid => list_to_integer(os:getpid())};
                 {error, Why} -> #{id => Id, ok => false, error => unicode:characters_to_binary(Why)}
             end,
    Timeout = erlang:convert_time_unit(TimeoutNs, nanosecond, millisecond) + 30000,
    case beam_control:request(post, "/v1/hot/report", beam_json:encode(Report), Timeout) of
        {ok, 200, Verdict} ->
            case beam_json:decode(Verdict) of
                {ok, #{<<"proceed">> := true}} -> beam:log("hot upgrade ~s done", [Id]);
                {ok, #{<<"error">> := Err}} when Result =:= ok ->
                    %% The new code runs, but the parent did not record the
                    %% release: a restart of the unit would run the old one.
                    %% This example does not load the old code back.
                    beam:log("hot upgrade ~s: the new code runs, but the parent did not record it "
                             "(a restart runs the old release): ~s", [Id, Err]);
                {ok, #{<<"error">> := Err}} -> beam:log("hot upgrade ~s failed: ~s", [Id, Err]);
                _ -> beam:log("hot upgrade ~s: unreadable verdict ~s", [Id, Verdict])
            end;
        Other ->
            beam:log("hot upgrade ~s: report not taken: ~p", [Id, Other])
    end.

%% load loads the modules of Dir/ebin whose code differs from the loaded
%% code, all or none (code:atomic_load/1), while the counter is suspended,
%% then has the counter convert its state (code_change/3 of the new
%% code). It returns ok or {error, Why} with what failed; on an error
%% before the modules were loaded, the old code keeps running untouched.
-spec load(binary(), binary()) -> ok | {error, iodata()}.
load(Dir, Rel) ->
    Ebin = filename:join(Dir, "ebin"),
    try
        Mods = changed(Ebin),
        [purge_old(M) || {M, _, _} <- Mods],
        OldVsn = beam_reply:version(),
        Counter = whereis(beam_counter),
        ok = sys:suspend(Counter, 10000),
        try
            case code:atomic_load(Mods) of
                ok -> ok;
                {error, Errs} -> throw(io_lib:format("load ~s: ~p (nothing was loaded)", [Ebin, Errs]))
            end,
            case lists:keymember(beam_counter, 1, Mods) andalso sys:change_code(Counter, beam_counter, OldVsn, Rel, 10000) of
                false -> ok;
                ok -> ok;
                {error, Why} -> throw(io_lib:format("beam_counter:code_change/3 from ~s: ~p", [OldVsn, Why]))
            end
        after
            sys:resume(Counter, 10000)
        end,
        true = code:add_patha(binary_to_list(Ebin)),
        os:putenv("BEAMDEPLOY_RELEASE", binary_to_list(Rel)),
        beam:log("hot upgrade ~s -> ~s: loaded ~w", [OldVsn, Rel, [M || {M, _, _} <- Mods]]),
        ok
    catch
        throw:Msg ->
            beam:log("hot upgrade to ~s failed, the old code keeps serving: ~s", [Rel, Msg]),
            {error, Msg}
    end.

%% changed reads every module of Ebin and returns those whose code differs
%% from the loaded one, as code:atomic_load/1 takes them.
changed(Ebin) ->
    case filelib:wildcard(binary_to_list(filename:join(Ebin, "*.beam"))) of
        [] -> throw(io_lib:format("no modules in ~s", [Ebin]));
        Files -> [{M, F, B} || F <- Files, {M, B, Md5} <- [read(F)], differs(M, Md5)]
    end.

read(File) ->
    case beam_lib:md5(File) of
        {ok, {M, Md5}} ->
            case file:read_file(File) of
                {ok, Bin} -> {M, Bin, Md5};
                {error, Why} -> throw(io_lib:format("read ~s: ~s", [File, file:format_error(Why)]))
            end;
        {error, beam_lib, Why} -> throw(beam_lib:format_error(Why))
    end.

differs(M, Md5) -> code:is_loaded(M) =:= false orelse M:module_info(md5) =/= Md5.

%% purge_old removes the code a module had before the last load, unless a
%% process still runs it (then the upgrade fails and changes nothing).
purge_old(M) ->
    case code:soft_purge(M) of
        true -> ok;
        false -> throw(io_lib:format("module ~s: a process still runs the code it had before the last upgrade; try again", [M]))
    end.
