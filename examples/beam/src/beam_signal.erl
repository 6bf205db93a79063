%% beam_signal: turns SIGTERM into a drain. It replaces OTP's default
%% handler in erl_signal_server (which calls init:stop/0 at once) and sends
%% sigterm to the process given at install/1.
-module(beam_signal).
-behaviour(gen_event).
-export([install/1]).
-export([init/1, handle_event/2, handle_call/2]).

install(Pid) ->
    ok = os:set_signal(sigterm, handle),
    ok = gen_event:swap_handler(erl_signal_server, {erl_signal_handler, []}, {?MODULE, Pid}).

init({Pid, _OldHandlerState}) -> {ok, Pid}.

handle_event(sigterm, Pid) ->
    Pid ! sigterm,
    {ok, Pid};
handle_event(_Signal, Pid) ->
    {ok, Pid}.

handle_call(_, Pid) -> {ok, ok, Pid}.
