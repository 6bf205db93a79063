%% beam_http: HTTP/1.1 over the socket module, for both sides: the server
%% the example runs on the listening socket (keep-alive, Content-Length and
%% chunked bodies) and the messages the control client reads.
%%
%% Draining follows the Go SDK's Serve: once drain/0 is called, every
%% response carries "Connection: close" and its connection is closed after
%% it; an idle keep-alive connection is left open (its client may be
%% sending the next request on it in that very instant) until its client
%% uses it or closes it, or the owner kills it at its drain deadline.
-module(beam_http).
-export([acceptor/2, drain/0, draining/0, read_head/3, read_body/4, header/2]).

-define(MAX_HEAD, 65536).
-define(MAX_BODY, 16777216).
-define(HEAD_TIMEOUT, 10000). % the rest of a request head once its first byte came
-define(BODY_TIMEOUT, 30000).

%% Connections record whether a request is in flight here, for the count
%% of requests cut at the drain deadline.
-define(CONNS, beam_http_conns).

%% drain makes every further response close its connection.
drain() -> persistent_term:put({?MODULE, draining}, true).

draining() -> persistent_term:get({?MODULE, draining}, false).

%% acceptor accepts one connection on LSock, tells Owner ({accepted,
%% self()}: the owner starts the next acceptor and watches this process as
%% a connection), then serves it; Handler(Req) answers each request. It
%% ends when it gets stop while it waits for a connection. It waits with a
%% select, not in accept itself, so that stop never meets a connection
%% accepted and not yet served: a connection it did not accept stays in
%% the shared socket's queue for another process.
acceptor(LSock, {Owner, Handler} = Arg) ->
    case socket:accept(LSock, nowait) of
        {ok, S} ->
            Owner ! {accepted, self()},
            ets:insert(?CONNS, {self(), idle}),
            serve(S, <<>>, Handler);
        {select, {select_info, _, Handle} = Info} ->
            receive
                {'$socket', LSock, select, Handle} -> acceptor(LSock, Arg);
                stop -> _ = socket:cancel(LSock, Info), ok
            end;
        {error, Why} -> % say emfile: let connections end, try again
            beam:log("accept: ~p; trying again in 100 ms", [Why]),
            receive stop -> ok after 100 -> acceptor(LSock, Arg) end
    end.

serve(S, Buf, Handler) ->
    case read_head(S, Buf, infinity) of
        {ok, {http_request, Method, Target, Vsn}, Hs, Buf1} ->
            ets:insert(?CONNS, {self(), active}),
            case read_body(S, Hs, Buf1, request) of
                {ok, Body, Rest} ->
                    Req = #{method => Method, target => target(Target), headers => Hs, body => Body},
                    {Status, RHs, RBody} = Handler(Req),
                    Close = close_after(Vsn, Hs) orelse draining(),
                    ok = respond(S, Status, RHs, RBody, Close),
                    ets:insert(?CONNS, {self(), idle}),
                    case Close of
                        true -> done(S);
                        false -> serve(S, Rest, Handler)
                    end;
                {error, too_large} ->
                    _ = respond(S, 413, [], <<"request body too large\n">>, true),
                    done(S);
                {error, _} ->
                    _ = respond(S, 400, [], <<"bad request body\n">>, true),
                    done(S)
            end;
        {ok, _, _, _} ->
            _ = respond(S, 400, [], <<"not an HTTP request\n">>, true),
            done(S);
        {error, bad_request} ->
            _ = respond(S, 400, [], <<"bad request\n">>, true),
            done(S);
        {error, _} -> % closed by the client, or a head that never ended
            done(S)
    end.

done(S) ->
    ets:delete(?CONNS, self()),
    socket:close(S).

target({abs_path, P}) -> P;
target({absoluteURI, _, _, _, P}) -> P;
target(_) -> <<"/">>.

%% close_after: HTTP/1.0 closes unless asked to keep alive; HTTP/1.1 keeps
%% alive unless asked to close.
close_after({1, 0}, Hs) -> not has_token(header(<<"connection">>, Hs), <<"keep-alive">>);
close_after(_, Hs) -> has_token(header(<<"connection">>, Hs), <<"close">>).

has_token(undefined, _) -> false;
has_token(V, Token) -> lists:member(Token, [string:trim(T) || T <- binary:split(string:lowercase(V), <<",">>, [global])]).

respond(S, Status, Hs, Body, Close) ->
    Conn = case Close of true -> [<<"Connection: close\r\n">>]; false -> [] end,
    Head = [<<"HTTP/1.1 ">>, integer_to_binary(Status), $\s, reason(Status), <<"\r\n">>,
            [[K, <<": ">>, V, <<"\r\n">>] || {K, V} <- Hs],
            <<"Content-Length: ">>, integer_to_binary(iolist_size(Body)), <<"\r\n">>, Conn, <<"\r\n">>],
    case socket:send(S, [Head, Body]) of
        ok -> ok;
        {error, _} -> ok % the client left; the connection ends with the next read
    end.

reason(200) -> <<"OK">>;
reason(204) -> <<"No Content">>;
reason(400) -> <<"Bad Request">>;
reason(404) -> <<"Not Found">>;
reason(413) -> <<"Content Too Large">>;
reason(_) -> <<"Status">>.

%% read_head reads a request or response line and its headers from S after
%% what Buf holds. It waits FirstTimeout (ms or infinity) for the first
%% byte, then at most ?HEAD_TIMEOUT for the rest. Header names come back
%% in lower case.
-spec read_head(socket:socket(), binary(), timeout()) ->
          {ok, tuple(), [{binary(), binary()}], binary()} | {error, term()}.
read_head(S, Buf, FirstTimeout) ->
    Deadline = case Buf of <<>> -> FirstTimeout; _ -> ?HEAD_TIMEOUT end,
    start_line(S, Buf, Deadline).

start_line(S, Buf, Timeout) ->
    case erlang:decode_packet(http_bin, Buf, []) of
        {ok, {http_error, _}, _} -> {error, bad_request};
        {ok, Line, Rest} -> headers(S, Line, Rest, []);
        {more, _} when byte_size(Buf) > ?MAX_HEAD -> {error, bad_request};
        {more, _} ->
            case socket:recv(S, 0, Timeout) of
                {ok, More} -> start_line(S, <<Buf/binary, More/binary>>, ?HEAD_TIMEOUT);
                {error, _} = E -> E
            end;
        {error, _} -> {error, bad_request}
    end.

headers(S, Line, Buf, Acc) ->
    case erlang:decode_packet(httph_bin, Buf, []) of
        {ok, http_eoh, Rest} -> {ok, Line, lists:reverse(Acc), Rest};
        {ok, {http_header, _, Name, _, Value}, Rest} -> headers(S, Line, Rest, [{name(Name), Value} | Acc]);
        {ok, {http_error, _}, _} -> {error, bad_request};
        {more, _} when byte_size(Buf) > ?MAX_HEAD -> {error, bad_request};
        {more, _} ->
            case socket:recv(S, 0, ?HEAD_TIMEOUT) of
                {ok, More} -> headers(S, Line, <<Buf/binary, More/binary>>, Acc);
                {error, _} = E -> E
            end;
        {error, _} -> {error, bad_request}
    end.

name(N) when is_atom(N) -> string:lowercase(atom_to_binary(N));
name(N) -> string:lowercase(N).

header(Name, Hs) -> proplists:get_value(Name, Hs).

%% read_body reads the body the headers announce: chunked, Content-Length,
%% or (Kind response only) everything until the peer closes. It returns
%% the body and what followed it.
-spec read_body(socket:socket(), [{binary(), binary()}], binary(), request | response) ->
          {ok, binary(), binary()} | {error, term()}.
read_body(S, Hs, Buf, Kind) ->
    case {header(<<"transfer-encoding">>, Hs), header(<<"content-length">>, Hs), Kind} of
        {undefined, undefined, request} -> {ok, <<>>, Buf};
        {undefined, undefined, response} -> until_closed(S, Buf);
        {undefined, Len, _} ->
            try binary_to_integer(string:trim(Len)) of
                N when N > ?MAX_BODY -> {error, too_large};
                N when N >= 0 -> exactly(S, N, Buf);
                _ -> {error, bad_length}
            catch error:badarg -> {error, bad_length}
            end;
        {TE, _, _} ->
            case string:lowercase(string:trim(TE)) of
                <<"chunked">> -> chunks(S, Buf, [], 0);
                _ -> {error, unsupported_transfer_encoding}
            end
    end.

exactly(_S, N, Buf) when byte_size(Buf) >= N ->
    <<Body:N/binary, Rest/binary>> = Buf,
    {ok, Body, Rest};
exactly(S, N, Buf) ->
    case socket:recv(S, 0, ?BODY_TIMEOUT) of
        {ok, More} -> exactly(S, N, <<Buf/binary, More/binary>>);
        {error, _} = E -> E
    end.

until_closed(_S, Buf) when byte_size(Buf) > ?MAX_BODY -> {error, too_large};
until_closed(S, Buf) ->
    case socket:recv(S, 0, ?BODY_TIMEOUT) of
        {ok, More} -> until_closed(S, <<Buf/binary, More/binary>>);
        {error, closed} -> {ok, Buf, <<>>};
        {error, _} = E -> E
    end.

%% chunks decodes a chunked body (RFC 9112, 7.1); trailers are dropped.
chunks(S, Buf, Acc, Size) ->
    case binary:split(Buf, <<"\r\n">>) of
        [SizeLine, Rest] ->
            [Hex | _] = binary:split(SizeLine, <<";">>),
            try binary_to_integer(string:trim(Hex), 16) of
                0 -> trailers(S, Rest, Acc);
                N when N + Size > ?MAX_BODY -> {error, too_large};
                N ->
                    case exactly(S, N + 2, Rest) of
                        {ok, <<Chunk:N/binary, "\r\n">>, Rest1} -> chunks(S, Rest1, [Acc, Chunk], Size + N);
                        {ok, _, _} -> {error, bad_chunk};
                        {error, _} = E -> E
                    end
            catch error:badarg -> {error, bad_chunk}
            end;
        [_] when byte_size(Buf) > 1024 -> {error, bad_chunk};
        [_] -> more(S, Buf, fun(B) -> chunks(S, B, Acc, Size) end)
    end.

trailers(S, Buf, Acc) ->
    case binary:split(Buf, <<"\r\n">>) of
        [<<>>, Rest] -> {ok, iolist_to_binary(Acc), Rest};
        [_, Rest] -> trailers(S, Rest, Acc);
        [_] when byte_size(Buf) > ?MAX_HEAD -> {error, bad_chunk};
        [_] -> more(S, Buf, fun(B) -> trailers(S, B, Acc) end)
    end.

more(S, Buf, Next) ->
    case socket:recv(S, 0, ?BODY_TIMEOUT) of
        {ok, More} -> Next(<<Buf/binary, More/binary>>);
        {error, _} = E -> E
    end.
