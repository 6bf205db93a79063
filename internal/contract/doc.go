// Package contract holds what beamdeploy's parent, its exec shim
// (beamdeploy exec) and the app SDK must agree on, so that each of them
// reads it from one place:
//
//   - the environment of an instance (BEAM_DEPLOY, BEAMDEPLOY_*), and of a
//     successor started by a hot upgrade ([SuccessorEnv], [EnvSuccessor]);
//   - the listening sockets passed as sd_listen_fds(3) describes, with one
//     set of rules for reading them ([ParseListenFDs]);
//   - the shim's command line, in an instance unit ([ExecArgv]) and in a
//     hot upgrade's order ([HandoverArgv]), and the flag and command names
//     the CLI declares for it;
//   - the hot upgrade record on disk, through which a unit restarted after
//     a hot upgrade runs the release it was upgraded to ([HotRecord]).
//
// The wire types of the control API are in internal/control; the protocol
// as an app sees it is written down in docs/protocol.md.
package contract
