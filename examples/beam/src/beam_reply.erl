%% beam_reply: builds the answer to a request. Its code carries the
%% release version (erlc -DVERSION=...): an in-place hot upgrade that loads
%% the new release's module changes the reply of the running process.
-module(beam_reply).
-export([version/0, reply/1]).

-ifndef(VERSION).
-define(VERSION, "dev").
-endif.

version() -> <<?VERSION>>.

%% reply answers any request: the body names the release; the headers give
%% the release (X-Release), the instance (X-Instance), the OS process
%% (X-Pid), the requests counted so far across swaps and hot upgrades
%% (X-Requests), the releases this process's state went through
%% (X-Releases, through code_change) and the request body's length
%% (X-Received).
reply(#{body := Body}) ->
    {N, Releases} = beam_counter:hit(),
    Headers = [{<<"Content-Type">>, <<"text/plain">>},
               {<<"X-Release">>, version()},
               {<<"X-Instance">>, os:getenv("BEAMDEPLOY_UNIT", "standalone")},
               {<<"X-Pid">>, os:getpid()},
               {<<"X-Requests">>, integer_to_binary(N)},
               {<<"X-Releases">>, lists:join(<<" ">>, Releases)},
               {<<"X-Received">>, integer_to_binary(byte_size(Body))}],
    {200, Headers, [<<"hello from beam ">>, version(), $\n]}.
