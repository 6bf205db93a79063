%% beam_json: the little JSON the example needs (OTP 25 has no json
%% module): decode/1 reads any JSON text into maps with binary keys,
%% binaries, numbers, true/false and null; encode/1 writes a flat map of
%% binaries, integers and booleans.
-module(beam_json).
-export([decode/1, encode/1]).

-spec decode(binary()) -> {ok, term()} | {error, string()}.
decode(Bin) ->
    try value(ws(Bin)) of
        {V, Rest} ->
            case ws(Rest) of
                <<>> -> {ok, V};
                _ -> {error, "trailing data after the JSON value"}
            end
    catch
        throw:{json, Why} -> {error, Why}
    end.

value(<<${, R/binary>>) -> object(ws(R), #{});
value(<<$[, R/binary>>) -> array(ws(R), []);
value(<<$", R/binary>>) -> string(R, <<>>);
value(<<"true", R/binary>>) -> {true, R};
value(<<"false", R/binary>>) -> {false, R};
value(<<"null", R/binary>>) -> {null, R};
value(<<C, _/binary>> = B) when C =:= $-; C >= $0, C =< $9 -> number(B);
value(_) -> throw({json, "expected a JSON value"}).

object(<<$}, R/binary>>, M) when map_size(M) =:= 0 -> {M, R};
object(<<$", R0/binary>>, M) ->
    {K, R1} = string(R0, <<>>),
    case ws(R1) of
        <<$:, R2/binary>> ->
            {V, R3} = value(ws(R2)),
            case ws(R3) of
                <<$,, R4/binary>> -> object(ws(R4), M#{K => V});
                <<$}, R4/binary>> -> {M#{K => V}, R4};
                _ -> throw({json, "expected , or } in an object"})
            end;
        _ -> throw({json, "expected : in an object"})
    end;
object(_, _) -> throw({json, "expected a key in an object"}).

array(<<$], R/binary>>, []) -> {[], R};
array(B, Acc) ->
    {V, R0} = value(B),
    case ws(R0) of
        <<$,, R1/binary>> -> array(ws(R1), [V | Acc]);
        <<$], R1/binary>> -> {lists:reverse([V | Acc]), R1};
        _ -> throw({json, "expected , or ] in an array"})
    end.

string(<<$", R/binary>>, Acc) -> {Acc, R};
string(<<$\\, $u, H:4/binary, R/binary>>, Acc) ->
    C = binary_to_integer(H, 16),
    case {C, R} of
        {Hi, <<$\\, $u, L:4/binary, R1/binary>>} when Hi >= 16#D800, Hi =< 16#DBFF ->
            Lo = binary_to_integer(L, 16),
            string(R1, <<Acc/binary, ((Hi - 16#D800) bsl 10 + (Lo - 16#DC00) + 16#10000)/utf8>>);
        _ -> string(R, <<Acc/binary, C/utf8>>)
    end;
string(<<$\\, E, R/binary>>, Acc) ->
    C = case E of
            $" -> $"; $\\ -> $\\; $/ -> $/; $b -> $\b; $f -> $\f;
            $n -> $\n; $r -> $\r; $t -> $\t;
            _ -> throw({json, "bad escape in a string"})
        end,
    string(R, <<Acc/binary, C>>);
string(<<C, R/binary>>, Acc) -> string(R, <<Acc/binary, C>>);
string(<<>>, _) -> throw({json, "unterminated string"}).

%% Integers, and floats as binary_to_float/1 takes them (1.5, 1.5e3; not 1e3).
number(B) ->
    N = numlen(B, 0),
    <<Num:N/binary, R/binary>> = B,
    try {binary_to_integer(Num), R}
    catch error:badarg ->
        try {binary_to_float(Num), R}
        catch error:badarg -> throw({json, "bad number"})
        end
    end.

numlen(<<C, R/binary>>, N) when C >= $0, C =< $9; C =:= $-; C =:= $+; C =:= $.; C =:= $e; C =:= $E ->
    numlen(R, N + 1);
numlen(_, N) -> N.

ws(<<C, R/binary>>) when C =:= $\s; C =:= $\t; C =:= $\n; C =:= $\r -> ws(R);
ws(B) -> B.

-spec encode(#{atom() => binary() | integer() | boolean()}) -> binary().
encode(M) ->
    Fields = [[quote(atom_to_binary(K)), $:, enc(V)] || {K, V} <- lists:sort(maps:to_list(M))],
    iolist_to_binary([${, lists:join($,, Fields), $}]).

enc(true) -> <<"true">>;
enc(false) -> <<"false">>;
enc(I) when is_integer(I) -> integer_to_binary(I);
enc(B) when is_binary(B) -> quote(B).

quote(B) -> [$", [esc(C) || <<C>> <= B], $"].

esc($") -> <<"\\\"">>;
esc($\\) -> <<"\\\\">>;
esc(C) when C < 16#20 -> io_lib:format("\\u~4.16.0b", [C]);
esc(C) -> C.
