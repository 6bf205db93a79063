//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/sockact"
)

// swapTiming is what one swap cost, as far as the system tells.
type swapTiming struct {
	Begin, End time.Time
	Ready      time.Duration // start requested → READY=1 (0 if unknown)
	Stop       time.Duration // stop requested → old instance gone (0 if unknown)
	OldRelease string
	Start      *pending // beamdeploy: the new instance's start, for its breakdown
}

// system is one way of replacing the running app.
type system interface {
	Name() string
	URL() string
	Swap(ctx context.Context) (swapTiming, error)
	Close()
}

// drainTimeout is how long every system gives an old instance to drain
// (beamdeploy's drain_timeout, the restarted unit's TimeoutStopSec): hello
// closes what is left a quarter before it (BEAMDEPLOY_DRAIN_TIMEOUT).
const drainTimeout = 10 * time.Second

// --- beamdeploy ---

type bdSystem struct {
	bin, app, addr string
	releases       [2]string
	versions       [2]string
	next           int
}

func newBD(ctx context.Context, bin, dist, addr string) (*bdSystem, error) {
	s := &bdSystem{bin: bin, app: "bench", addr: addr,
		releases: [2]string{filepath.Join(dist, "hello-1.0.0.tar.gz"), filepath.Join(dist, "hello-1.1.0.tar.gz")},
		versions: [2]string{"1.0.0", "1.1.0"}}
	if err := pinDropIn("bench@.service", "Environment="+sockact.TraceEnv+"=1"); err != nil {
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, bin, "init", s.app, "--listen", addr, "--exec", "bin/hello", "--drain-timeout", drainTimeout.String(), "--force").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("init: %w: %s", err, out)
	}
	if _, err := s.upgrade(ctx, s.releases[0]); err != nil {
		return nil, err
	}
	s.next = 1
	return s, nil
}

func (s *bdSystem) Name() string { return "beamdeploy" }
func (s *bdSystem) URL() string  { return "http://" + s.addr }
func (s *bdSystem) Close() {
	_ = exec.Command("systemctl", "stop", s.app+".service", s.app+".socket").Run() // best effort
}

func (s *bdSystem) Swap(ctx context.Context) (swapTiming, error) {
	t := swapTiming{Begin: time.Now(), OldRelease: s.versions[1-s.next]}
	res, err := s.upgrade(ctx, s.releases[s.next])
	t.End = time.Now()
	if err != nil {
		return t, err
	}
	s.next = 1 - s.next
	t.Ready, t.Stop = res.Ready, res.Stop
	if res.To != nil {
		p := &pending{swapID: res.ID, unit: res.To.Unit, invocation: res.To.InvocationID, ready: res.Ready}
		if unitTimes(ctx, p) == nil { // else no breakdown for this swap (the unit was restarted already)
			t.Start = p
		}
	}
	return t, nil
}

func (s *bdSystem) upgrade(ctx context.Context, tarball string) (control.Result, error) {
	cmd := exec.CommandContext(ctx, s.bin, "--json", "upgrade", s.app, tarball)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return control.Result{}, fmt.Errorf("upgrade: %w: %s", err, stderr.String())
	}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var r control.Result
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.MessageType == control.TypeResult {
			return r, nil
		}
	}
	return control.Result{}, errors.New("upgrade printed no result")
}

// parentPID asks beamdeploy status for the parent's pid.
func (s *bdSystem) parentPID() (int, error) {
	out, err := exec.Command(s.bin, "--json", "status", s.app).Output()
	if err != nil {
		return 0, err
	}
	var st control.Status
	if err := json.Unmarshal(out, &st); err != nil {
		return 0, err
	}
	return st.ParentPID, nil
}

// parentStats reads the parent's RSS (kB) and open fd count.
func (s *bdSystem) parentStats() (rssKB, fds int, err error) {
	pid, err := s.parentPID()
	if err != nil {
		return 0, 0, err
	}
	return procStats(pid)
}

// parentMemory splits the parent's resident set: the pages of its
// executable (text and read-only data mapped from the file, shared with
// every other beamdeploy process) and the rest (heap, stacks, runtime).
func (s *bdSystem) parentMemory() (exeKB, otherKB int, err error) {
	pid, err := s.parentPID()
	if err != nil {
		return 0, 0, err
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return 0, 0, err
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return 0, 0, err
	}
	var mapped string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			mapped = "" // a mapping's header: range perms offset dev inode [path]
			if len(f) >= 6 {
				mapped = f[5]
			}
		case len(f) >= 2 && f[0] == "Rss:":
			kb, _ := strconv.Atoi(f[1])
			if mapped == exe {
				exeKB += kb
			} else {
				otherKB += kb
			}
		}
	}
	return exeKB, otherKB, nil
}

func procStats(pid int) (rssKB, fds int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			_, _ = fmt.Sscan(v, &rssKB) // "  1234 kB"
		}
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return rssKB, len(ents), err
}

// --- systemctl restart of a plain socket-activated service ---

type restartSystem struct{ addr, unit string }

func newRestart(ctx context.Context, hello, addr string) (*restartSystem, error) {
	s := &restartSystem{addr: addr, unit: "bench-restart"}
	files := map[string]string{
		s.unit + ".socket": "[Socket]\nListenStream=" + addr + "\n",
		s.unit + ".service": "[Unit]\nStartLimitIntervalSec=0\n[Service]\nType=notify\nExecStart=" + hello + "\nEnvironment=BEAM_DEPLOY=1 HELLO_LISTEN=" + addr + " BEAMDEPLOY_DRAIN_TIMEOUT=" + drainTimeout.String() +
			"\nCPUAffinity=0\nTimeoutStopSec=" + drainTimeout.String() + "\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join("/run/systemd/system", name), []byte(text), 0o644); err != nil {
			return nil, err
		}
	}
	for _, args := range [][]string{{"daemon-reload"}, {"start", s.unit + ".socket"}, {"start", s.unit + ".service"}} {
		if out, err := exec.CommandContext(ctx, "systemctl", args...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("systemctl %v: %w: %s", args, err, out)
		}
	}
	return s, nil
}

func (s *restartSystem) Name() string { return "systemctl restart" }
func (s *restartSystem) URL() string  { return "http://" + s.addr }
func (s *restartSystem) Close() {
	_ = exec.Command("systemctl", "stop", s.unit+".service", s.unit+".socket").Run() // best effort
}

func (s *restartSystem) Swap(ctx context.Context) (swapTiming, error) {
	t := swapTiming{Begin: time.Now(), OldRelease: "1.0.0"}
	out, err := exec.CommandContext(ctx, "systemctl", "restart", s.unit+".service").CombinedOutput()
	t.End = time.Now()
	if err != nil {
		return t, fmt.Errorf("systemctl restart: %w: %s", err, out)
	}
	return t, nil
}

// --- per-instance SO_REUSEPORT overlap, as BeamDeploy does ---

type reuseSystem struct {
	hello, addr string
	migrate     int
	old         *exec.Cmd
	notify      *net.UnixConn
	restore     string
	readyTimes  []time.Duration // process start → READY=1
}

func newReuse(hello, addr string, migrate int) (*reuseSystem, error) {
	s := &reuseSystem{hello: hello, addr: addr, migrate: migrate}
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_migrate_req")
	if err != nil {
		return nil, fmt.Errorf("read tcp_migrate_req: %w", err)
	}
	s.restore = strings.TrimSpace(string(b))
	if err := os.WriteFile("/proc/sys/net/ipv4/tcp_migrate_req", []byte(fmt.Sprint(migrate)), 0o644); err != nil {
		return nil, fmt.Errorf("set tcp_migrate_req: %w", err)
	}
	sock := filepath.Join(os.TempDir(), fmt.Sprintf("bench-notify-%d.sock", migrate))
	_ = os.Remove(sock)
	s.notify, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return nil, err
	}
	s.old, err = s.start()
	return s, err
}

func (s *reuseSystem) Name() string {
	return fmt.Sprintf("SO_REUSEPORT, tcp_migrate_req=%d", s.migrate)
}
func (s *reuseSystem) URL() string { return "http://" + s.addr }

// start runs a new hello and waits for its READY=1.
func (s *reuseSystem) start() (*exec.Cmd, error) {
	cmd := exec.Command(s.hello)
	cmd.Env = append(os.Environ(), "HELLO_REUSEPORT=1", "HELLO_LISTEN="+s.addr, "NOTIFY_SOCKET="+s.notify.LocalAddr().String(),
		"BEAMDEPLOY_DRAIN_TIMEOUT="+drainTimeout.String())
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	_ = unix.SchedSetaffinity(cmd.Process.Pid, cpuSet(0)) // best effort, like CPUAffinity=0
	buf := make([]byte, 256)
	_ = s.notify.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		n, err := s.notify.Read(buf)
		if err != nil {
			_ = cmd.Process.Kill()
			return nil, fmt.Errorf("wait for READY=1: %w", err)
		}
		if bytes.Contains(buf[:n], []byte("READY=1")) {
			s.readyTimes = append(s.readyTimes, time.Since(begin))
			return cmd, nil
		}
	}
}

func (s *reuseSystem) Swap(context.Context) (swapTiming, error) {
	t := swapTiming{Begin: time.Now(), OldRelease: "1.0.0"}
	next, err := s.start()
	if err != nil {
		return t, err
	}
	t.Ready = time.Since(t.Begin)
	stop := time.Now()
	_ = s.old.Process.Signal(syscall.SIGTERM)
	_ = s.old.Wait() // exit status of a drained hello is not interesting
	t.Stop = time.Since(stop)
	s.old = next
	t.End = time.Now()
	return t, nil
}

func (s *reuseSystem) Close() {
	if s.old != nil {
		_ = s.old.Process.Signal(syscall.SIGTERM)
		_ = s.old.Wait()
	}
	_ = s.notify.Close()
	_ = os.WriteFile("/proc/sys/net/ipv4/tcp_migrate_req", []byte(s.restore), 0o644) // restore
}

func cpuSet(cpus ...int) *unix.CPUSet {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	return &set
}

// pinDropIn keeps the app's instances on CPU 0, away from the load
// generator on CPU 1, and adds the settings more.
func pinDropIn(unit string, more ...string) error {
	dir := filepath.Join("/etc/systemd/system", unit+".d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	text := "[Service]\nCPUAffinity=0\n" + strings.Join(append(more, ""), "\n")
	if err := os.WriteFile(filepath.Join(dir, "bench-cpu.conf"), []byte(text), 0o644); err != nil {
		return err
	}
	return exec.Command("systemctl", "daemon-reload").Run()
}
