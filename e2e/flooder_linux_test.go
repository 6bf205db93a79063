package e2e_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

type floodConn struct {
	fd     int
	target int
	done   bool // the parent answered or closed it
}

// floodCycle is how often the flooder looks at its connections.
const floodCycle = 250 * time.Millisecond

func floodMain() int {
	var plan floodPlan
	if err := json.Unmarshal([]byte(os.Getenv(floodEnv)), &plan); err != nil {
		fmt.Fprintln(os.Stderr, "flooder: bad plan:", err)
		return 2
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err == nil {
		lim.Cur = lim.Max
		_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &lim) // holds fewer connections when it fails; the report says how many
	}
	var stop atomic.Bool
	go func() {
		_, _ = bufio.NewReader(os.Stdin).ReadString(0) // until the test closes stdin
		stop.Store(true)
	}()
	f := &flooder{plan: plan, reports: make([]floodReport, len(plan.Targets))}
	end := time.Now().Add(plan.Duration)
	for i, tg := range plan.Targets {
		for range tg.Initial {
			if stop.Load() || time.Now().After(end) || !f.open(i) {
				break
			}
		}
	}
	for {
		f.scan() // the first report says the initial connections are open
		if stop.Load() || time.Now().After(end) {
			break
		}
		time.Sleep(floodCycle)
		f.churn()
	}
	f.scan()
	return 0
}

// floodRetry bounds how long the flooder retries one connection while the
// control socket's backlog is full.
const floodRetry = 10 * time.Second

type flooder struct {
	plan    floodPlan
	conns   []floodConn
	opened  int
	reports []floodReport
}

// open connects once more to target i, retrying while the backlog is
// full; false once the flooder may not or cannot open more.
func (f *flooder) open(i int) bool {
	if f.opened >= f.plan.Max {
		return false
	}
	// While the backlog is full, retry for a while: on a busy machine the
	// parent's accept loop can lag for longer than a few retries.
	for deadline := time.Now().Add(floodRetry); time.Now().Before(deadline); {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if errors.Is(err, unix.EMFILE) && len(f.conns) > 0 {
			// Out of descriptors: it holds what it can and lets the
			// oldest connection go.
			_ = unix.Close(f.conns[0].fd) // ours
			f.conns = f.conns[1:]
			continue
		}
		if err != nil {
			return false
		}
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: f.plan.Targets[i].Path})
		if err == nil {
			f.conns = append(f.conns, floodConn{fd: fd, target: i})
			f.opened++
			f.reports[i].Opened++
			return true
		}
		_ = unix.Close(fd) // failed socket
		f.reports[i].ConnectErr++
		if !errors.Is(err, unix.EAGAIN) {
			return false
		}
		time.Sleep(100 * time.Microsecond)
	}
	return false
}

// scan classifies every connection by what the parent did with it and
// prints a report line.
func (f *flooder) scan() {
	held := make([]int, len(f.reports))
	buf := make([]byte, 16)
	for k := range f.conns {
		c := &f.conns[k]
		if c.done {
			continue
		}
		n, _, err := unix.Recvfrom(c.fd, buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
		r := &f.reports[c.target]
		switch {
		case errors.Is(err, unix.EAGAIN):
			held[c.target]++
			continue
		case n > 0 && bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 403")):
			r.Forbidden++
		case n > 0 && bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 503")):
			r.Busy++
		default:
			r.Closed++
		}
		c.done = true
	}
	for i := range f.reports {
		f.reports[i].Held = held[i]
	}
	b, _ := json.Marshal(f.reports) // plain structs
	fmt.Println(string(b))
}

// churn closes up to Churn connections the parent is done with and opens
// as many new ones, shared among the targets like the initial ones.
func (f *flooder) churn() {
	n := 0
	kept := f.conns[:0]
	for _, c := range f.conns {
		if c.done && n < f.plan.Churn {
			_ = unix.Close(c.fd) // the parent closed its end already
			n++
			continue
		}
		kept = append(kept, c)
	}
	f.conns = kept
	total := 0
	for _, tg := range f.plan.Targets {
		total += tg.Initial
	}
	for i, tg := range f.plan.Targets {
		for range (n*tg.Initial + total - 1) / max(total, 1) {
			if !f.open(i) {
				return
			}
		}
	}
}
