%% beam_notify: sd_notify(3) messages to systemd on $NOTIFY_SOCKET, a unix
%% datagram socket (a leading @ names an abstract address).
-module(beam_notify).
-export([notify/1, monotonic_usec/0]).

%% notify sends Msg ("READY=1", "STOPPING=1", ...). Without NOTIFY_SOCKET
%% (not run by systemd) it does nothing and returns ok.
-spec notify(iodata()) -> ok | {error, term()}.
notify(Msg) ->
    case os:getenv("NOTIFY_SOCKET", "") of
        "" -> ok;
        [$@ | Abstract] -> send(<<0, (unicode:characters_to_binary(Abstract))/binary>>, Msg);
        Path -> send(unicode:characters_to_binary(Path), Msg)
    end.

send(Path, Msg) ->
    case socket:open(local, dgram, default) of
        {ok, S} ->
            try socket:sendto(S, iolist_to_binary(Msg), #{family => local, path => Path}) of
                ok -> ok;
                {error, Why} -> {error, {notify, Path, Why}}
            after
                socket:close(S)
            end;
        {error, Why} ->
            {error, {notify_socket, Why}}
    end.

%% monotonic_usec is CLOCK_MONOTONIC in microseconds, what systemd wants in
%% MONOTONIC_USEC= next to RELOADING=1. erlang:monotonic_time/1 has an
%% offset of the VM's own; the OS clock the VM reads (CLOCK_MONOTONIC on
%% Linux) is in os_monotonic_time_source.
-spec monotonic_usec() -> integer().
monotonic_usec() ->
    Source = erlang:system_info(os_monotonic_time_source),
    erlang:convert_time_unit(proplists:get_value(time, Source), native, microsecond).
