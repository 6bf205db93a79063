package contract

import (
	"slices"
	"strconv"
	"strings"
)

// Environment variables the parent sets for its instances (and the SDK
// exports under the same names).
const (
	// EnvEnabled turns managed mode on; the parent sets it to "1".
	EnvEnabled = "BEAM_DEPLOY"
	// EnvApp holds the app name.
	EnvApp = "BEAMDEPLOY_APP"
	// EnvUnit holds the instance's unit name, e.g. "hello@blue.service".
	EnvUnit = "BEAMDEPLOY_UNIT"
	// EnvColor holds the instance's colour, "blue" or "green".
	EnvColor = "BEAMDEPLOY_COLOR"
	// EnvRelease holds the release (version) the process runs.
	EnvRelease = "BEAMDEPLOY_RELEASE"
	// EnvSocket holds the path of the parent's control socket.
	EnvSocket = "BEAMDEPLOY_SOCKET"
	// EnvDrainTimeout holds the instance's stop timeout, in Go's duration
	// syntax.
	EnvDrainTimeout = "BEAMDEPLOY_DRAIN_TIMEOUT"
	// EnvSuccessor is set to "1" by the exec shim in a process started by
	// a hot upgrade (see [HandoverArgv]): it is not the unit's main process
	// until it claims the unit (MAINPID=).
	EnvSuccessor = "BEAMDEPLOY_SUCCESSOR"
)

// The socket activation variables of sd_listen_fds(3).
const (
	EnvListenPID     = "LISTEN_PID"
	EnvListenFDs     = "LISTEN_FDS"
	EnvListenFDNames = "LISTEN_FDNAMES"
)

// The exec shim's command line: beamdeploy exec APP [--handover] -- COMMAND.
const (
	// ExecCommand is the name of the shim's CLI command.
	ExecCommand = "exec"
	// HandoverFlag is the name of the shim's flag for a successor of a hot
	// upgrade: it takes the listeners the old process passed at fd 3 on.
	HandoverFlag = "handover"
)

// ExecArgv is the command line of an instance unit of app: the exec shim
// self (the beamdeploy binary) gets the listeners and execs argv.
func ExecArgv(self, app string, argv []string) []string {
	return slices.Concat([]string{self, ExecCommand, app, "--"}, argv)
}

// HandoverArgv is the command line the old process of a hot upgrade
// (successor mode) starts: the exec shim self takes the listeners the old
// process passed (see [SuccessorEnv]), sets LISTEN_PID to its own pid and
// [EnvSuccessor], and execs argv.
func HandoverArgv(self, app string, argv []string) []string {
	return slices.Concat([]string{self, ExecCommand, app, "--" + HandoverFlag, "--"}, argv)
}

// SuccessorEnv is the environment the old process of a hot upgrade gives
// the command of the order (see [HandoverArgv]): base (its own), with
// orderEnv on top and LISTEN_FDS and LISTEN_FDNAMES for the listeners
// named names, which it passes at fd 3 on. LISTEN_PID is left out: the
// old process cannot know the new pid, and the exec shim sets it.
func SuccessorEnv(base, orderEnv, names []string) []string {
	set := map[string]string{
		EnvListenFDs:     strconv.Itoa(len(names)),
		EnvListenFDNames: strings.Join(names, ":"),
	}
	for _, kv := range orderEnv {
		if k, v, ok := strings.Cut(kv, "="); ok {
			set[k] = v
		}
	}
	var env []string
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; !ok && k != EnvListenPID {
			env = append(env, kv)
		}
	}
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	return env
}
