%% beam_control: a client of the parent's HTTP API on $BEAMDEPLOY_SOCKET
%% (docs/protocol.md): one request per connection, over the unix socket.
-module(beam_control).
-export([request/4, get_handoff/1, put_handoff/2, delete_handoff/1, cutover/1]).

%% request sends Method Path with Body and returns the status and body of
%% the answer, or {error, Why} (no socket, the parent is restarting, or no
%% answer within Timeout ms).
-spec request(get | put | post | delete, iodata(), iodata(), timeout()) ->
          {ok, integer(), binary()} | {error, term()}.
request(Method, Path, Body, Timeout) ->
    case os:getenv("BEAMDEPLOY_SOCKET", "") of
        "" -> {error, no_beamdeploy_socket};
        Sock -> request(unicode:characters_to_binary(Sock), Method, Path, Body, Timeout)
    end.

request(Sock, Method, Path, Body, Timeout) ->
    {ok, S} = socket:open(local, stream, default),
    try
        ok = ok(socket:connect(S, #{family => local, path => Sock})),
        M = string:uppercase(atom_to_binary(Method)),
        ok = ok(socket:send(S, [M, $\s, Path, <<" HTTP/1.1\r\nHost: beamdeploy\r\nConnection: close\r\n">>,
                                <<"Content-Length: ">>, integer_to_binary(iolist_size(Body)), <<"\r\n\r\n">>, Body])),
        case beam_http:read_head(S, <<>>, Timeout) of
            {ok, {http_response, _, Status, _}, _, _} when Status =:= 204; Status =:= 304 ->
                {ok, Status, <<>>};
            {ok, {http_response, _, Status, _}, Hs, Rest} ->
                {ok, RBody, _} = ok(beam_http:read_body(S, Hs, Rest, response)),
                {ok, Status, RBody};
            {ok, Other, _, _} -> {error, {unexpected_answer, Other}};
            {error, _} = Failed -> Failed
        end
    catch
        throw:{error, _} = Thrown -> Thrown
    after
        socket:close(S)
    end.

ok(ok) -> ok;
ok({ok, _, _} = R) -> R;
ok({error, _} = E) -> throw(E).

%% get_handoff returns the value stored under Key, not_found, or an error.
get_handoff(Key) ->
    case request(get, ["/v1/handoff/", quote(Key)], <<>>, 10000) of
        {ok, 200, V} -> {ok, V};
        {ok, 404, _} -> not_found;
        {ok, Status, B} -> {error, {Status, B}};
        {error, _} = E -> E
    end.

put_handoff(Key, Value) -> expect(204, request(put, ["/v1/handoff/", quote(Key)], Value, 10000)).

delete_handoff(Key) -> expect(204, request(delete, ["/v1/handoff/", quote(Key)], <<>>, 10000)).

%% cutover waits until no swap runs (the old instance, if any, has stopped)
%% and returns the peers of Unit.
cutover(Unit) ->
    case request(get, ["/v1/cutover?", uri_string:compose_query([{"unit", Unit}])], <<>>, 15 * 60000) of
        {ok, 200, B} -> beam_json:decode(B);
        {ok, Status, B} -> {error, {Status, B}};
        {error, _} = E -> E
    end.

expect(Status, {ok, Status, _}) -> ok;
expect(_, {ok, Status, B}) -> {error, {Status, B}};
expect(_, {error, _} = E) -> E.

quote(Key) -> uri_string:quote(Key).
