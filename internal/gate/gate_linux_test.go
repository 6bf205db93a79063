package gate_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/gate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The test binary doubles as an unprivileged peer: with dialEnv set to
// "PATH N" it opens N connections to the socket at PATH, prints
// "connected", then answers each "report" line on stdin with what the
// gate did to its connections, and exits when stdin closes.
const dialEnv = "GATE_TEST_DIAL"

func TestMain(m *testing.M) {
	if v := os.Getenv(dialEnv); v != "" {
		os.Exit(dialer(v))
	}
	os.Exit(m.Run())
}

func dialer(spec string) int {
	path, n, _ := strings.Cut(spec, " ")
	count, _ := strconv.Atoi(n)
	var conns []net.Conn
	for range count {
		c, err := net.Dial("unix", path)
		if err != nil {
			fmt.Println("dial error:", err)
			return 1
		}
		conns = append(conns, c)
	}
	fmt.Println("connected")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		// For each connection: the gate's answer, "eof" (closed without
		// one), or "held" (still open).
		var out []string
		for _, c := range conns {
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			b, err := io.ReadAll(c)
			var ne net.Error
			switch {
			case len(b) > 0:
				out = append(out, strings.Fields(string(b))[0])
			case errors.As(err, &ne) && ne.Timeout():
				out = append(out, "held")
			default:
				out = append(out, "eof")
			}
		}
		fmt.Println(strings.Join(out, " "))
	}
	return 0
}

// peerProc is a dialer running as another uid.
type peerProc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

// startPeer runs the dialer as uid, opening n connections to path.
func startPeer(t *testing.T, bin, path string, uid, n int) *peerProc {
	t.Helper()
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", dialEnv, path, n))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: []uint32{}}}
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &peerProc{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	t.Cleanup(func() { p.stop() })
	require.True(t, p.out.Scan())
	require.Equal(t, "connected", p.out.Text())
	return p
}

// report returns what the gate did to each of the peer's connections.
func (p *peerProc) report(t *testing.T) []string {
	t.Helper()
	_, err := io.WriteString(p.in, "report\n")
	require.NoError(t, err)
	require.True(t, p.out.Scan())
	return strings.Fields(p.out.Text())
}

func (p *peerProc) stop() {
	_ = p.in.Close() // the dialer exits on EOF
	_ = p.cmd.Wait() // its exit status does not matter once it reported
}

func count(answers []string, what string) int {
	n := 0
	for _, a := range answers {
		if a == what {
			n++
		}
	}
	return n
}

// fixture is a gate on a socket any uid may connect to, with a copy of the
// test binary any uid may run.
type fixture struct {
	path string
	bin  string
	gate *gate.Listener[int]

	mu       sync.Mutex // guards running, peak, calls
	running  map[int]int
	peak     map[int]int // most concurrent Authorize calls per uid
	peakAll  int
	calls    int
	released chan struct{} // closed: slow lookups return
}

// newFixture starts a gate whose Authorize admits uids in allow (the
// verdict is the uid), refuses the others, and holds the lookups of uids
// in slow until f.released is closed or the lookup times out. Root is
// privileged. Refuse writes "too-many", "busy" or "denied".
func newFixture(t *testing.T, lim gate.Limits, allow, slow []int, reserved ...int) *fixture {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the peers run as other uids")
	}
	// Not t.TempDir: its parent is private to root.
	dir, err := os.MkdirTemp("", "gate-test-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) }) // test files
	require.NoError(t, os.Chmod(dir, 0o755))
	f := &fixture{path: filepath.Join(dir, "s.sock"), bin: filepath.Join(dir, "peer"),
		running: map[int]int{}, peak: map[int]int{}, released: make(chan struct{})}
	self, err := os.Executable()
	require.NoError(t, err)
	b, err := os.ReadFile(self)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(f.bin, b, 0o755))
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: f.path, Net: "unix"})
	require.NoError(t, err)
	require.NoError(t, os.Chmod(f.path, 0o666))
	f.gate, err = gate.Listen(ln, gate.Config[int]{
		Limits:     lim,
		Privileged: func(c gate.Cred) bool { return c.UID == 0 },
		Reserved:   func(c gate.Cred) bool { return contains(reserved, c.UID) },
		Authorize: func(ctx context.Context, c *net.UnixConn) (int, bool) {
			cred, err := gate.PeerCred(c)
			if err != nil {
				return -1, false
			}
			f.enter(cred.UID)
			defer f.leave(cred.UID)
			if contains(slow, cred.UID) {
				select {
				case <-f.released:
				case <-ctx.Done():
					return cred.UID, false
				}
			}
			return cred.UID, cred.UID == 0 || contains(allow, cred.UID)
		},
		Refuse: func(c *net.UnixConn, _ gate.Cred, _ int, err error) {
			word := "denied"
			switch {
			case errors.Is(err, gate.ErrTooMany):
				word = "too-many"
			case errors.Is(err, gate.ErrBusy):
				word = "busy"
			}
			_, _ = io.WriteString(c, word+"\n")
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		f.release()
		_ = f.gate.Close()
	})
	return f
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func (f *fixture) enter(uid int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.running[uid]++
	f.peak[uid] = max(f.peak[uid], f.running[uid])
	all := 0
	for _, n := range f.running {
		all += n
	}
	f.peakAll = max(f.peakAll, all)
}

func (f *fixture) leave(uid int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.running[uid]--
}

func (f *fixture) release() {
	select {
	case <-f.released:
	default:
		close(f.released)
	}
}

func (f *fixture) runningLookups(uid int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.running[uid]
}

// serve accepts in the background and returns admitted connections.
func (f *fixture) serve(t *testing.T) <-chan *gate.Conn[int] {
	out := make(chan *gate.Conn[int], 100)
	go func() {
		for {
			c, err := f.gate.AcceptConn()
			if err != nil {
				close(out)
				return
			}
			out <- c
		}
	}()
	t.Cleanup(func() {
		f.release()
		_ = f.gate.Close() // ends the loop above
		for c := range out {
			_ = c.Close() // test connections
		}
	})
	return out
}

func next(t *testing.T, admitted <-chan *gate.Conn[int]) *gate.Conn[int] {
	t.Helper()
	select {
	case c := <-admitted:
		require.NotNil(t, c)
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no connection admitted")
		return nil
	}
}

func TestAdmittedConnectionCarriesVerdictAndCredentials(t *testing.T) {
	f := newFixture(t, gate.Limits{}, []int{60001}, nil)
	admitted := f.serve(t)

	c, err := net.Dial("unix", f.path)
	require.NoError(t, err)
	defer c.Close()
	gc := next(t, admitted)
	assert.Equal(t, 0, gc.Verdict)
	assert.Equal(t, os.Getpid(), gc.Cred.PID)
	assert.Equal(t, 0, gc.Cred.UID)
	groups, err := os.Getgroups()
	require.NoError(t, err)
	assert.ElementsMatch(t, groups, gc.Cred.Groups, "SO_PEERGROUPS")

	// The admitted connection works both ways.
	_, err = c.Write([]byte("ping"))
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = io.ReadFull(gc, buf)
	require.NoError(t, err)
	assert.Equal(t, "ping", string(buf))

	p := startPeer(t, f.bin, f.path, 60001, 1)
	gc2 := next(t, admitted)
	assert.Equal(t, 60001, gc2.Verdict)
	assert.Equal(t, 60001, gc2.Cred.UID)
	assert.Equal(t, p.cmd.Process.Pid, gc2.Cred.PID)
	assert.Empty(t, gc2.Cred.Groups)
	assert.Equal(t, 1, f.gate.Stats().Open, "the admitted unprivileged connection counts until closed")
	require.NoError(t, gc2.Close())
	assert.Equal(t, 0, f.gate.Stats().Open)
	f.mu.Lock()
	assert.Equal(t, 2, f.calls, "Authorize runs once per connection")
	f.mu.Unlock()
}

func TestRefusedPeerIsAnsweredAndClosedAtOnce(t *testing.T) {
	f := newFixture(t, gate.Limits{}, nil, nil)
	admitted := f.serve(t)

	p := startPeer(t, f.bin, f.path, 60002, 20)
	require.Eventually(t, func() bool { return f.gate.Stats().Refused == 20 }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, strings.Repeat("denied ", 20), strings.Join(p.report(t), " ")+" ")
	assert.Equal(t, 0, f.gate.Stats().Open, "refused connections are not held")
	assert.Empty(t, admitted)
}

// A flooding uid gets PerUID connections, all unprivileged peers together
// Total; beyond that they are refused at once, while root still gets in.
func TestConnectionLimits(t *testing.T) {
	f := newFixture(t, gate.Limits{PerUID: 3, Total: 5, LookupTimeout: time.Minute}, []int{60011, 60012}, []int{60011, 60012})
	admitted := f.serve(t)

	a := startPeer(t, f.bin, f.path, 60011, 10)
	require.Eventually(t, func() bool { return f.gate.Stats().TooMany == 7 }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, 3, f.gate.Stats().Open)
	b := startPeer(t, f.bin, f.path, 60012, 10)
	require.Eventually(t, func() bool { return f.gate.Stats().TooMany == 15 }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, 5, f.gate.Stats().Open)
	ra, rb := a.report(t), b.report(t)
	assert.Equal(t, 3, count(ra, "held"), "%v", ra)
	assert.Equal(t, 7, count(ra, "too-many"), "%v", ra)
	assert.Equal(t, 2, count(rb, "held"), "%v", rb)
	assert.Equal(t, 8, count(rb, "too-many"), "%v", rb)

	// Root is not counted and gets through.
	c, err := net.Dial("unix", f.path)
	require.NoError(t, err)
	defer c.Close()
	assert.Equal(t, 0, next(t, admitted).Cred.UID)

	// Once the lookups end, the held connections are admitted; closing
	// them frees their places.
	f.release()
	var got []*gate.Conn[int]
	for range 5 {
		got = append(got, next(t, admitted))
	}
	assert.Equal(t, 5, f.gate.Stats().Open)
	for _, c := range got {
		require.NoError(t, c.Close())
	}
	assert.Equal(t, 0, f.gate.Stats().Open)
	c2 := startPeer(t, f.bin, f.path, 60012, 1)
	assert.Equal(t, 60012, next(t, admitted).Verdict)
	c2.stop()
}

// Other users filling the total cannot lock out a reserved uid (the one
// the app's instances run as): it keeps its own per-uid room.
func TestReservedUIDKeepsItsRoom(t *testing.T) {
	f := newFixture(t, gate.Limits{PerUID: 3, Total: 5, LookupTimeout: time.Minute}, []int{60011, 60012, 60013}, []int{60011, 60012, 60013}, 60013)
	f.serve(t)
	a := startPeer(t, f.bin, f.path, 60011, 3)
	b := startPeer(t, f.bin, f.path, 60012, 3)
	require.Eventually(t, func() bool { return f.gate.Stats().TooMany == 1 }, 10*time.Second, 10*time.Millisecond, "the total is full")
	c := startPeer(t, f.bin, f.path, 60013, 4)
	require.Eventually(t, func() bool { return f.gate.Stats().TooMany == 2 }, 10*time.Second, 10*time.Millisecond, "only its own limit refuses it")
	rc := c.report(t)
	assert.Equal(t, 3, count(rc, "held"), "%v", rc)
	assert.Equal(t, 1, count(rc, "too-many"), "%v", rc)
	_, _ = a.report(t), b.report(t)
	f.release()
}

// Slow lookups of one uid take at most LookupsPerUID slots: another uid
// is identified meanwhile.
func TestLookupsBoundedPerUID(t *testing.T) {
	lim := gate.Limits{Lookups: 3, LookupsPerUID: 2, LookupTimeout: time.Minute}
	f := newFixture(t, lim, []int{60022}, []int{60021})
	admitted := f.serve(t)

	slow := startPeer(t, f.bin, f.path, 60021, 6)
	require.Eventually(t, func() bool { return f.runningLookups(60021) == 2 }, 5*time.Second, 5*time.Millisecond)
	fast := startPeer(t, f.bin, f.path, 60022, 1)
	gc := next(t, admitted)
	assert.Equal(t, 60022, gc.Verdict, "identified while the slow lookups hang")
	require.NoError(t, gc.Close())
	fast.stop()
	assert.Equal(t, 2, f.runningLookups(60021))
	assert.Equal(t, 6, f.gate.Stats().Open, "the slow uid's connections wait")

	f.release()
	require.Eventually(t, func() bool { return f.gate.Stats().Refused == 6 }, 10*time.Second, 10*time.Millisecond)
	f.mu.Lock()
	assert.Equal(t, 2, f.peak[60021], "lookups of one uid at once")
	assert.LessOrEqual(t, f.peakAll, lim.Lookups, "lookups at once")
	f.mu.Unlock()
	r := slow.report(t)
	assert.Equal(t, 6, count(r, "denied"), "%v", r)
	assert.Equal(t, 0, f.gate.Stats().Open)
}

// A peer not identified within LookupTimeout, the wait for a slot
// included, is refused as busy.
func TestLookupTimeout(t *testing.T) {
	f := newFixture(t, gate.Limits{LookupsPerUID: 1, LookupTimeout: 300 * time.Millisecond}, nil, []int{60041})
	f.serve(t)
	p := startPeer(t, f.bin, f.path, 60041, 3)
	require.Eventually(t, func() bool { return f.gate.Stats().Busy == 3 }, 10*time.Second, 10*time.Millisecond)
	r := p.report(t)
	assert.Equal(t, 3, count(r, "busy"), "%v", r)
	assert.Equal(t, 0, f.gate.Stats().Open)
	f.mu.Lock()
	assert.Equal(t, 1, f.peak[60041])
	f.mu.Unlock()
}

func TestCloseEndsAcceptAndPendingLookups(t *testing.T) {
	f := newFixture(t, gate.Limits{LookupTimeout: time.Minute}, []int{60031}, []int{60031})
	p := startPeer(t, f.bin, f.path, 60031, 3)
	require.Eventually(t, func() bool { return f.runningLookups(60031) > 0 }, 5*time.Second, 5*time.Millisecond)
	accepted := make(chan error, 1)
	go func() {
		_, err := f.gate.Accept()
		accepted <- err
	}()
	require.NoError(t, f.gate.Close())
	select {
	case err := <-accepted:
		require.ErrorIs(t, err, net.ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return after Close")
	}
	require.Eventually(t, func() bool { return f.gate.Stats().Open == 0 }, 5*time.Second, 5*time.Millisecond)
	r := p.report(t)
	assert.Zero(t, count(r, "held"), "%v", r)
	_, err := net.Dial("unix", f.path)
	assert.Error(t, err, "the socket is closed")
}
