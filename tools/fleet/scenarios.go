package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/loadgen"
	"github.com/beamdeploy/beamdeploy/internal/swap"
)

// load runs through HAProxy while a scenario runs: keep-alive POSTs and a
// new connection per GET, two clients each, bounded in time and count.
type load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ka, nc loadgen.Stats
}

func (l *lab) startLoad(ctx context.Context) *load {
	ctx, cancel := context.WithCancel(ctx)
	ld := &load{cancel: cancel}
	o := loadgen.Options{URL: l.lb, Workers: 2, Duration: 6 * time.Minute, MaxRequests: 2_000_000, Pause: 10 * time.Millisecond}
	ka := o
	ka.Method, ka.Body, ka.KeepAlive = "POST", []byte("fleet"), true
	ld.wg.Go(func() { ld.ka = loadgen.Run(ctx, ka) })
	ld.wg.Go(func() { ld.nc = loadgen.Run(ctx, o) })
	return ld
}

// stop ends the load and fails when a request failed.
func (ld *load) stop() (loadgen.Stats, error) {
	ld.cancel()
	ld.wg.Wait()
	t := loadgen.Stats{Sent: ld.ka.Sent + ld.nc.Sent, OK: ld.ka.OK + ld.nc.OK, Failed: ld.ka.Failed + ld.nc.Failed, ByClass: map[string]int64{}, Releases: map[string]int64{}}
	for _, s := range []loadgen.Stats{ld.ka, ld.nc} {
		for k, v := range s.ByClass {
			t.ByClass[k] += v
		}
		for k, v := range s.Releases {
			t.Releases[k] += v
		}
		t.Errors = append(t.Errors, s.Errors...)
	}
	fmt.Printf("load through HAProxy: %s (keep-alive POST %d / %d failed, new-connection GET %d / %d failed); releases answered: %v\n",
		t, ld.ka.Sent, ld.ka.Failed, ld.nc.Sent, ld.nc.Failed, t.Releases)
	if t.Failed > 0 {
		return t, fmt.Errorf("%d requests through HAProxy failed: %s", t.Failed, strings.Join(t.Errors, "; "))
	}
	if t.OK == 0 {
		return t, errors.New("no request through HAProxy succeeded: the load did not run")
	}
	return t, nil
}

// scenario runs body under load; a failed request fails it.
func (l *lab) scenario(ctx context.Context, name string, body func() error) error {
	step("%s", name)
	start := time.Now()
	ld := l.startLoad(ctx)
	err := body()
	_, lerr := ld.stop()
	if err = errors.Join(err, lerr); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	fmt.Printf("ok (%.1f s)\n", time.Since(start).Seconds())
	return nil
}

func (l *lab) test(ctx context.Context) error {
	scenarios := []struct {
		name string
		body func(context.Context) error
	}{
		{"rolling upgrade of 3 hosts to 1.1.0, serial 1", l.rollingUpgrade},
		{"the same playbook again: changed=0 on every host, no swap", l.sameAgain},
		{"1.3.0 in check mode with --diff: each host would swap, none does", l.checkMode},
		{"1.2.0 crashes at start on h2, rollback_on_failure: true", l.crashWithRollback},
		{"1.2.0 crashes at start on h2, rollback_on_failure: false", l.crashNoRollback},
		{`h2 becomes unreachable mid-rollout of 1.3.0, serial [1, "25%", "100%"]`, l.unreachable},
	}
	for _, s := range scenarios {
		if err := l.scenario(ctx, s.name, func() error { return s.body(ctx) }); err != nil {
			return err
		}
	}
	step("fleet lab: every scenario passed")
	return nil
}

func (l *lab) rollingUpgrade(ctx context.Context) error {
	r, err := l.playbook(ctx, l.vars("1.1.0", map[string]any{"beamdeploy_serial": 1}))
	if err != nil {
		return err
	}
	if r.rc != 0 {
		return fmt.Errorf("ansible-playbook exited %d:\n%s", r.rc, r.tail(40))
	}
	return errors.Join(l.expect(ctx, "1.1.0", "1.1.0", "1.1.0"), l.printSwaps(ctx, "1.1.0"))
}

func (l *lab) sameAgain(ctx context.Context) error {
	before, err := l.lastSwaps(ctx)
	if err != nil {
		return err
	}
	r, err := l.playbook(ctx, l.vars("1.1.0", map[string]any{"beamdeploy_serial": 1}))
	if err != nil {
		return err
	}
	if r.rc != 0 {
		return fmt.Errorf("ansible-playbook exited %d:\n%s", r.rc, r.tail(40))
	}
	recap, err := parseRecap(r.output)
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range []string{"h1", "h2", "h3"} {
		if recap[h]["changed"] != 0 || recap[h]["failed"] != 0 {
			errs = append(errs, fmt.Errorf("%s: changed=%d failed=%d, want 0 and 0", h, recap[h]["changed"], recap[h]["failed"]))
		}
	}
	after, err := l.lastSwaps(ctx)
	if err != nil {
		return err
	}
	for i := range before {
		if before[i] != after[i] {
			errs = append(errs, fmt.Errorf("h%d swapped: last swap %s, before the playbook %s", i+1, after[i], before[i]))
		}
	}
	fmt.Printf("recap: %s; last swap ids unchanged: %v\n", recapLine(recap), after)
	return errors.Join(append(errs, l.expect(ctx, "1.1.0", "1.1.0", "1.1.0"))...)
}

func (l *lab) checkMode(ctx context.Context) error {
	before, err := l.lastSwaps(ctx)
	if err != nil {
		return err
	}
	r, err := l.playbook(ctx, l.vars("1.3.0", nil), "--check", "--diff")
	if err != nil {
		return err
	}
	if r.rc != 0 {
		return fmt.Errorf("ansible-playbook --check exited %d:\n%s", r.rc, r.tail(40))
	}
	var errs []error
	if n := strings.Count(r.output, "+release: 1.3.0"); n != 3 {
		errs = append(errs, fmt.Errorf("the diff shows +release: 1.3.0 %d times, want once per host:\n%s", n, r.tail(40)))
	}
	recap, err := parseRecap(r.output)
	if err != nil {
		return err
	}
	for _, h := range []string{"h1", "h2", "h3"} {
		if recap[h]["changed"] != 1 {
			errs = append(errs, fmt.Errorf("%s: changed=%d in check mode, want 1 (the swap it would make)", h, recap[h]["changed"]))
		}
	}
	after, err := l.lastSwaps(ctx)
	if err != nil {
		return err
	}
	for i := range before {
		if before[i] != after[i] {
			errs = append(errs, fmt.Errorf("h%d swapped in check mode: last swap %s, before %s", i+1, after[i], before[i]))
		}
	}
	fmt.Printf("recap: %s; diff -release: 1.1.0 +release: 1.3.0 on each host; no swap\n", recapLine(recap))
	return errors.Join(append(errs, l.expect(ctx, "1.1.0", "1.1.0", "1.1.0"))...)
}

// crash rolls out 1.2.0, which crashes at start on h2: the play must stop
// there, naming h2, with a non-zero exit.
func (l *lab) crash(ctx context.Context, rollback bool) error {
	r, err := l.playbook(ctx, l.vars("1.2.0", map[string]any{"beamdeploy_serial": 1, "rollback_on_failure": rollback}))
	if err != nil {
		return err
	}
	if r.rc == 0 {
		return fmt.Errorf("ansible-playbook exited 0, want a failure at h2:\n%s", r.tail(40))
	}
	stop := regexp.MustCompile(`rolling upgrade of hello to 1\.2\.0 stopped at h2:[^\n]*`).FindString(r.output)
	if stop == "" {
		return fmt.Errorf("ansible-playbook exited %d without saying that it stopped at h2:\n%s", r.rc, r.tail(40))
	}
	if !strings.Contains(stop, "crashing at start") {
		return fmt.Errorf("the stop at h2 does not give the cause (the release's own message, from its journal): %s", stop)
	}
	if rolledTo(r.output, "h3") {
		return fmt.Errorf("the rollout reached h3 after h2 failed:\n%s", r.tail(40))
	}
	fmt.Printf("ansible-playbook exited %d: %s\n", r.rc, stop)
	return nil
}

func (l *lab) crashWithRollback(ctx context.Context) error {
	if err := l.crash(ctx, true); err != nil {
		return err
	}
	s, err := l.lastSwap(ctx, 1)
	if err != nil {
		return err
	}
	if !s.OK || s.Release != "1.1.0" || s.From == nil || s.From.Release != "1.2.0" {
		return fmt.Errorf("h1's last swap is %s (%+v), want its rollback from 1.2.0 to 1.1.0", s.ID, s)
	}
	fmt.Printf("h1 rolled back: swap %s from 1.2.0 to 1.1.0 (%q)\n", s.ID, s.Message)
	return l.expect(ctx, "1.1.0", "1.1.0", "1.1.0")
}

func (l *lab) crashNoRollback(ctx context.Context) error {
	if err := l.crash(ctx, false); err != nil {
		return err
	}
	return l.expect(ctx, "1.2.0", "1.1.0", "1.1.0")
}

// unreachable stops h2's sshd as soon as h1 serves 1.3.0 (its swap is
// under way), so that the play finds h2 unreachable when it gets there.
func (l *lab) unreachable(ctx context.Context) error {
	cut := make(chan error, 1)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { cut <- l.cutWhenServing(cctx, 1, "1.3.0", 2) }()
	r, err := l.playbook(ctx, l.vars("1.3.0", map[string]any{"beamdeploy_serial": []any{1, "25%", "100%"}}))
	cancel()
	if err != nil {
		return err
	}
	if err := <-cut; err != nil {
		return err
	}
	if r.rc == 0 {
		return fmt.Errorf("ansible-playbook exited 0, want a stop at the unreachable h2:\n%s", r.tail(40))
	}
	line := regexp.MustCompile(`(?m)^fatal: \[h2\]: UNREACHABLE!.*$`).FindString(r.output)
	if line == "" {
		return fmt.Errorf("ansible-playbook exited %d without saying that h2 is unreachable:\n%s", r.rc, r.tail(40))
	}
	fmt.Printf("ansible-playbook exited %d: %s\n", r.rc, trim(line, 300))
	if rolledTo(r.output, "h3") {
		return fmt.Errorf("the rollout reached h3 after h2 became unreachable:\n%s", r.tail(40))
	}
	return l.expect(ctx, "1.3.0", "1.1.0", "1.1.0")
}

// cutWhenServing stops sshd on host cut once host watch answers with
// release on its own address.
func (l *lab) cutWhenServing(ctx context.Context, watch int, release string, cut int) error {
	for {
		if got, err := served(ctx, watch); err == nil && got == release {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("h%d never served %s: h%d's sshd was not stopped", watch, release, cut)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := l.inHost(ctx, cut, "systemctl", "stop", "ssh.service"); err != nil {
		return err
	}
	// Ansible's shared connection to it (ControlPersist), if any, ends too.
	sock := filepath.Join(l.dir, "cp", fmt.Sprintf("192.0.2.1%d", cut))
	if _, err := os.Stat(sock); err == nil {
		if out, err := exec.CommandContext(ctx, "ssh", "-q", "-O", "exit", "-S", sock, "lab-host").CombinedOutput(); err != nil {
			return fmt.Errorf("close the shared SSH connection to h%d: %w: %s", cut, err, out)
		}
	}
	fmt.Printf("h%d serves %s: stopped sshd on h%d and closed Ansible's connection to it\n", watch, release, cut)
	return nil
}

func (l *lab) demo(ctx context.Context) error {
	step("rolling upgrade of 3 hosts from 1.0.0 to 1.1.0 (serial 1) under load through HAProxy")
	ld := l.startLoad(ctx)
	r, err := l.playbook(ctx, l.vars("1.1.0", map[string]any{"beamdeploy_serial": 1}))
	if err == nil && r.rc != 0 {
		err = fmt.Errorf("ansible-playbook exited %d", r.rc)
	}
	step("per host")
	err = errors.Join(err, l.printSwaps(ctx, "1.1.0"))
	fmt.Println()
	st, lerr := ld.stop()
	fmt.Printf("\n%s\n", st)
	return errors.Join(err, lerr)
}

// lastSwap is a host's newest swap, from `beamdeploy --json history`.
func (l *lab) lastSwap(ctx context.Context, i int) (swap.Result, error) {
	out, err := l.outHost(ctx, i, "beamdeploy", "--json", "history", app, "-n", "1")
	if err != nil {
		return swap.Result{}, err
	}
	var h struct {
		Swaps []swap.Result `json:"swaps"`
	}
	if err := json.Unmarshal(out, &h); err != nil {
		return swap.Result{}, fmt.Errorf("h%d: beamdeploy --json history: %w", i, err)
	}
	if len(h.Swaps) == 0 {
		return swap.Result{}, nil
	}
	return h.Swaps[0], nil
}

func (l *lab) lastSwaps(ctx context.Context) ([]string, error) {
	var ids []string
	for i := 1; i <= 3; i++ {
		s, err := l.lastSwap(ctx, i)
		if err != nil {
			return nil, err
		}
		ids = append(ids, s.ID)
	}
	return ids, nil
}

// printSwaps prints each host's last swap, which must be to release.
func (l *lab) printSwaps(ctx context.Context, release string) error {
	var errs []error
	fmt.Printf("%-4s %-9s %-9s %8s %8s %8s  %s\n", "host", "old", "new", "ready", "stop", "total", "swap")
	for i := 1; i <= 3; i++ {
		s, err := l.lastSwap(ctx, i)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		old := "none"
		if s.From != nil {
			old = s.From.Release
		}
		fmt.Printf("h%-3d %-9s %-9s %7.2fs %7.2fs %7.2fs  %s\n", i, old, s.Release, s.Ready.Seconds(), s.Stop.Seconds(), s.Total.Seconds(), s.ID)
		if !s.OK || s.Release != release {
			errs = append(errs, fmt.Errorf("h%d: last swap %s to %s ok=%v, want an ok swap to %s", i, s.ID, s.Release, s.OK, release))
		}
	}
	return errors.Join(errs...)
}

// rolledTo reports whether the rollout play (the playbook's second) ran a
// task on host.
func rolledTo(out, host string) bool {
	i := strings.Index(out, "PLAY [Roll ")
	if i < 0 {
		return false
	}
	return regexp.MustCompile(`(?m)^(ok|changed|fatal|failed|skipping): \[` + regexp.QuoteMeta(host) + `[\]\s]`).MatchString(out[i:])
}

var recapRe = regexp.MustCompile(`(?m)^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$`)

// parseRecap reads PLAY RECAP: host → counter → value.
func parseRecap(out string) (map[string]map[string]int, error) {
	i := strings.LastIndex(out, "PLAY RECAP")
	if i < 0 {
		return nil, errors.New("ansible-playbook printed no PLAY RECAP")
	}
	recap := map[string]map[string]int{}
	for _, m := range recapRe.FindAllStringSubmatch(out[i:], -1) {
		c := map[string]int{}
		for _, kv := range strings.Fields(m[2]) {
			var n int
			k, v, _ := strings.Cut(kv, "=")
			_, _ = fmt.Sscan(v, &n) // \d+ by the pattern
			c[k] = n
		}
		recap[m[1]] = c
	}
	return recap, nil
}

func recapLine(recap map[string]map[string]int) string {
	var parts []string
	for _, h := range []string{"h1", "h2", "h3"} {
		if c, ok := recap[h]; ok {
			parts = append(parts, fmt.Sprintf("%s ok=%d changed=%d failed=%d unreachable=%d", h, c["ok"], c["changed"], c["failed"], c["unreachable"]))
		}
	}
	return strings.Join(parts, ", ")
}

func trim(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
