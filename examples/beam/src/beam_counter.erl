%% beam_counter: the example's state, a gen_server holding the request
%% count and the releases its state went through. A blue-green swap hands
%% the count to the next instance through the handoff store (beam); an
%% in-place hot upgrade keeps this very process and its state, and
%% code_change/3 of the new code records the release it changed to.
-module(beam_counter).
-behaviour(gen_server).
-export([start_link/0, hit/0, add/1, count/0]).
-export([init/1, handle_call/3, handle_cast/2, code_change/3]).

-ifndef(VERSION).
-define(VERSION, "dev").
-endif.

start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% hit counts a request and returns the count and the releases the state
%% went through, oldest first. It waits while a hot upgrade has the
%% process suspended.
-spec hit() -> {pos_integer(), [binary()]}.
hit() -> gen_server:call(?MODULE, hit, infinity).

%% add adds N requests served by an earlier instance.
add(N) -> gen_server:call(?MODULE, {add, N}, infinity).

count() -> gen_server:call(?MODULE, count, infinity).

init([]) -> {ok, #{count => 0, releases => [<<?VERSION>>]}}.

handle_call(hit, _From, #{count := N, releases := Rs} = S) ->
    {reply, {N + 1, Rs}, S#{count := N + 1}};
handle_call({add, M}, _From, #{count := N} = S) ->
    {reply, ok, S#{count := N + M}};
handle_call(count, _From, #{count := N} = S) ->
    {reply, N, S}.

handle_cast(_, S) -> {noreply, S}.

%% code_change runs in the new code (sys:change_code/4, by beam_hot) while
%% the process is suspended: the count is kept and the new release noted.
code_change(_OldVsn, #{releases := Rs} = S, _Extra) ->
    {ok, S#{releases := Rs ++ [<<?VERSION>>]}}.
