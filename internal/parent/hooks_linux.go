package parent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/beamdeploy/beamdeploy/internal/swap"
)

// runGroup runs cmd as cred (nil: as this process) in a process group of
// its own, with its stdout and stderr copied to out, and returns once its
// process has exited. When ctx ends first, the group gets SIGTERM, then
// SIGKILL hookKillGrace later, and the error wraps ctx's. Once the process
// has exited, whatever it left in its group is killed. Its output is read
// until every writer is gone, at most hookKillGrace after the exit (a
// process that left the group may keep the pipe open).
func runGroup(ctx context.Context, cmd *exec.Cmd, cred *hookCred, out io.Writer) error {
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("output pipe: %w", err)
	}
	// An *os.File, not a Writer: Wait then does not wait for the output,
	// which a background process of the hook may hold open.
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if cred != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: cred.UID, Gid: cred.GID, Groups: cred.Groups}
	}
	err = cmd.Start()
	_ = pw.Close() // the child has its copy
	if err != nil {
		_ = pr.Close() // nothing will write
		return err
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(out, pr) // ends at EOF, or when pr is closed below
	}()
	defer func() {
		select {
		case <-copied:
		case <-time.After(hookKillGrace):
		}
		_ = pr.Close() // unblocks the copy
		<-copied
	}()
	pid := cmd.Process.Pid
	exited := exitedUnreaped(pid)
	// Until cmd.Wait reaps the group leader, pid (and so the group id) stays
	// its own: signals to -pid reach this hook's group and nothing else.
	var cut error
	select {
	case <-exited:
	case <-ctx.Done():
		cut = ctx.Err()
		_ = unix.Kill(-pid, unix.SIGTERM) // ESRCH: gone already
		select {
		case <-exited:
		case <-time.After(hookKillGrace):
		}
	}
	_ = unix.Kill(-pid, unix.SIGKILL) // what is left: all of it after a timeout, stragglers after an exit
	select {
	case <-exited:
	case <-time.After(hookKillGrace):
		go func() { _ = cmd.Wait() }() // reap it whenever it goes
		return fmt.Errorf("process %d did not exit after SIGKILL", pid)
	}
	err = cmd.Wait()
	if cut != nil {
		return fmt.Errorf("stopped (%w)", cut)
	}
	return err
}

// exitedUnreaped returns a channel closed once process pid, a child of
// this process, has exited. It does not reap it (WNOWAIT): cmd.Wait does.
func exitedUnreaped(pid int) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		var info unix.Siginfo
		for unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil) == unix.EINTR {
		}
	}()
	return ch
}

// instanceCredential returns the credentials of inst's main process,
// pinned: a pidfd holds the process while systemd confirms that it is
// still inst's main process, and the process must still be alive after its
// credentials were read, so that a reused PID cannot lend a hook someone
// else's identity.
func instanceCredential(ctx context.Context, um unitLookup, inst swap.Instance) (*hookCred, error) {
	if inst.PID <= 0 {
		return nil, fmt.Errorf("%s has no main process", inst.Unit)
	}
	pidfd, err := unix.PidfdOpen(inst.PID, 0)
	if err != nil {
		return nil, fmt.Errorf("open pid %d: %w", inst.PID, err)
	}
	defer unix.Close(pidfd)
	cred, err := procCredential(inst.PID)
	if err != nil {
		return nil, err
	}
	u, err := um.Unit(ctx, inst.Unit)
	if err != nil {
		return nil, fmt.Errorf("ask systemd for the main process of %s: %w", inst.Unit, err)
	}
	if u.MainPID != inst.PID || (inst.InvocationID != "" && u.InvocationID != inst.InvocationID) {
		return nil, fmt.Errorf("pid %d is no longer the main process of %s (systemd reports pid %d, invocation %s)", inst.PID, inst.Unit, u.MainPID, u.InvocationID)
	}
	if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err != nil {
		return nil, fmt.Errorf("pid %d exited while its credentials were read: %w", inst.PID, err)
	}
	return cred, nil
}

// procCredential reads the real uid, gid and supplementary groups of pid.
func procCredential(pid int) (*hookCred, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, fmt.Errorf("read the credentials of pid %d: %w", pid, err)
	}
	defer f.Close()
	var cred hookCred
	var seen int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, _ := strings.Cut(sc.Text(), ":")
		ids := parseIDs(val)
		switch {
		case key == "Uid" && len(ids) > 0:
			cred.UID, seen = ids[0], seen|1
		case key == "Gid" && len(ids) > 0:
			cred.GID, seen = ids[0], seen|2
		case key == "Groups":
			cred.Groups = ids
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read the credentials of pid %d: %w", pid, err)
	}
	if seen != 3 {
		return nil, fmt.Errorf("read the credentials of pid %d: no Uid or Gid line", pid)
	}
	return &cred, nil
}

// parseIDs parses a /proc status value of numeric ids; nil when it is
// not all numbers.
func parseIDs(val string) []uint32 {
	var ids []uint32
	for _, f := range strings.Fields(val) {
		n, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			return nil
		}
		ids = append(ids, uint32(n))
	}
	return ids
}
