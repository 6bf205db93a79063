package parent

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// peerOf identifies the process at the other end of a unix connection.
func peerOf(c net.Conn) peer {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return peer{Err: errors.New("not a unix socket")}
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return peer{Err: err}
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return peer{Err: err}
	}
	if cerr != nil {
		return peer{Err: fmt.Errorf("SO_PEERCRED: %w", cerr)}
	}
	p := peer{PID: int(cred.Pid), UID: int(cred.Uid), Groups: []int{int(cred.Gid)}}
	p.Groups = append(p.Groups, procGroups(p.PID)...)
	p.Unit = procUnit(p.PID)
	return p
}

// procGroups reads the supplementary groups of pid.
func procGroups(pid int) []int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Groups:"); ok {
			var out []int
			for _, g := range strings.Fields(rest) {
				if n, err := strconv.Atoi(g); err == nil {
					out = append(out, n)
				}
			}
			return out
		}
	}
	return nil
}

// procUnit returns the service unit whose cgroup holds pid, or "".
func procUnit(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return ""
	}
	return unitFromCgroup(string(b))
}

// unitFromCgroup finds the innermost .service in /proc/PID/cgroup text,
// preferring the unified (0::) hierarchy, else name=systemd.
func unitFromCgroup(text string) string {
	var fallback string
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		unit := lastService(parts[2])
		if parts[0] == "0" && parts[1] == "" && unit != "" {
			return unit
		}
		if parts[1] == "name=systemd" {
			fallback = unit
		}
	}
	return fallback
}

func lastService(path string) string {
	comps := strings.Split(path, "/")
	for i := len(comps) - 1; i >= 0; i-- {
		if strings.HasSuffix(comps[i], ".service") {
			return comps[i]
		}
	}
	return ""
}
