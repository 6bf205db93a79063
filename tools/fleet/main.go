// Command beamdeploy-fleet is what `make test-fleet` and `make fleet-demo`
// run inside scripts/fleet-lab's controller namespace: it installs the
// Ansible collection, sets three hosts up with the example playbook
// (beamdeploy's .deb, the app, hello 1.0.0), then rolls releases through
// them with ansible-playbook over SSH while load runs through HAProxy and
// counts every failed request.
//
// -mode test checks the scenarios of issue 14 (a rolling upgrade, the same
// playbook again, a release that crashes at start on host 2 with and without
// rollback_on_failure, a host that becomes unreachable mid-rollout) and
// exits non-zero when one fails. -mode demo runs one rolling upgrade and
// prints each host's old → new release and swap time, then the load's
// figures.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// lab is the fleet scripts/fleet-lab made, as its environment describes it.
type lab struct {
	dir     string   // FLEET_DIR: inventory, ansible.cfg, the key
	pids    []string // FLEET_PIDS: each host's systemd, for nsenter
	lb      string   // FLEET_LB: HAProxy
	dist    string   // release tarballs (dist/fleet)
	deb     string   // beamdeploy's .deb
	verbose bool     // stream ansible-playbook's output
	runs    int      // playbook runs so far (log file names)
}

const app = "hello"

func main() {
	mode := flag.String("mode", "test", "test: check every scenario; demo: one rolling upgrade under load")
	dist := flag.String("dist", "dist/fleet", "directory with hello-VERSION.tar.gz (scripts/fleet-releases)")
	deb := flag.String("deb", "", "beamdeploy's .deb (packaging/deb/build)")
	collection := flag.String("collection", "", "the collection tarball (make ansible)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	l, err := newLab(*dist, *deb, *mode == "demo")
	if err == nil {
		err = l.prepare(ctx, *collection)
	}
	if err == nil {
		switch *mode {
		case "test":
			err = l.test(ctx)
		case "demo":
			err = l.demo(ctx)
		default:
			err = fmt.Errorf("unknown -mode %q (test or demo)", *mode)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

func newLab(dist, deb string, verbose bool) (*lab, error) {
	l := &lab{dir: os.Getenv("FLEET_DIR"), pids: strings.Fields(os.Getenv("FLEET_PIDS")), lb: os.Getenv("FLEET_LB"), verbose: verbose}
	if l.dir == "" || len(l.pids) != 3 || l.lb == "" {
		return nil, errors.New("FLEET_DIR, FLEET_PIDS (three) and FLEET_LB are not set: run this under scripts/fleet-lab")
	}
	var err error
	if l.dist, err = filepath.Abs(dist); err != nil {
		return nil, err
	}
	if l.deb, err = filepath.Abs(deb); err != nil {
		return nil, err
	}
	return l, nil
}

// prepare installs the collection, marks host h2 as the one where release
// 1.2.0 crashes, and sets every host up with hello 1.0.0 (no load yet).
func (l *lab) prepare(ctx context.Context, collection string) error {
	out, err := exec.CommandContext(ctx, "ansible-galaxy", "collection", "install", "--force", "-p", filepath.Join(l.dir, "collections"), collection).CombinedOutput()
	if err != nil {
		return fmt.Errorf("install the collection %s: %w: %s", collection, err, out)
	}
	if err := l.inHost(ctx, 2, "sh", "-c", "mkdir -p /etc/beamdeploy-fleet-lab && touch /etc/beamdeploy-fleet-lab/crash"); err != nil {
		return err
	}
	step("set the hosts up: beamdeploy's .deb, the app, hello 1.0.0 (ansible-playbook beamdeploy.beamdeploy.rolling_upgrade)")
	r, err := l.playbook(ctx, l.vars("1.0.0", nil))
	if err != nil {
		return err
	}
	if r.rc != 0 {
		return fmt.Errorf("setting the hosts up failed (exit %d):\n%s", r.rc, r.tail(40))
	}
	if err := l.expect(ctx, "1.0.0", "1.0.0", "1.0.0"); err != nil {
		return err
	}
	return l.waitBalanced(ctx)
}

// vars are the playbook's extra variables for rolling out version.
func (l *lab) vars(version string, extra map[string]any) map[string]any {
	tarball := filepath.Join(l.dist, "hello-"+version+".tar.gz")
	sum, _ := os.ReadFile(tarball + ".sha256") // missing: the role checks nothing extra
	v := map[string]any{
		"beamdeploy_deb": l.deb, "beamdeploy_app": app, "beamdeploy_listen": []string{"8080"},
		"beamdeploy_exec": []string{"bin/hello"}, "beamdeploy_drain_timeout": "10s",
		"beamdeploy_version": version, "beamdeploy_tarball": tarball, "beamdeploy_health_header": "X-Release",
		"beamdeploy_message": "fleet lab",
	}
	if f := strings.Fields(string(sum)); len(f) > 0 {
		v["beamdeploy_sha256"] = f[0]
	}
	for k, x := range extra {
		v[k] = x
	}
	return v
}

// run is one ansible-playbook run.
type run struct {
	rc     int
	output string
}

func (r run) tail(n int) string {
	lines := strings.Split(strings.TrimRight(r.output, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// playbook runs the collection's example playbook with vars (and
// ansible-playbook's args); its output
// goes to a log file in the lab (and to stdout in verbose mode).
func (l *lab) playbook(ctx context.Context, vars map[string]any, args ...string) (run, error) {
	l.runs++
	data, err := json.Marshal(vars)
	if err != nil {
		return run{}, err
	}
	varsFile := filepath.Join(l.dir, fmt.Sprintf("vars-%d.json", l.runs))
	if err := os.WriteFile(varsFile, data, 0o600); err != nil {
		return run{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ansible-playbook", append([]string{"beamdeploy.beamdeploy.rolling_upgrade", "-e", "@" + varsFile}, args...)...)
	var buf strings.Builder
	var w io.Writer = &buf
	if l.verbose {
		w = io.MultiWriter(&buf, os.Stdout)
	}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.Env = append(os.Environ(), "ANSIBLE_NOCOLOR=1", "ANSIBLE_FORCE_COLOR=0")
	start := time.Now()
	err = cmd.Run()
	r := run{output: buf.String()}
	_ = os.WriteFile(filepath.Join(l.dir, fmt.Sprintf("playbook-%d.log", l.runs)), []byte(r.output), 0o644) // for the failure report only
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.rc = ee.ExitCode()
	case err != nil:
		return r, fmt.Errorf("run ansible-playbook: %w", err)
	}
	if ctx.Err() != nil {
		return r, fmt.Errorf("ansible-playbook did not end within 5 min:\n%s", r.tail(40))
	}
	fmt.Printf("ansible-playbook exited %d after %.1f s\n", r.rc, time.Since(start).Seconds())
	return r, nil
}

// inHost runs a command in host i (1-based) as root, through nsenter: the
// lab's own hand, independent of sshd.
func (l *lab) inHost(ctx context.Context, i int, args ...string) error {
	_, err := l.outHost(ctx, i, args...)
	return err
}

func (l *lab) outHost(ctx context.Context, i int, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	full := append([]string{"-t", l.pids[i-1], "-a", "--"}, args...)
	out, err := exec.CommandContext(ctx, "nsenter", full...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return out, fmt.Errorf("h%d: %s: %w: %s", i, strings.Join(args, " "), err, ee.Stderr)
		}
		return out, fmt.Errorf("h%d: %s: %w", i, strings.Join(args, " "), err)
	}
	return out, nil
}

// served is the release host i answers with on its own address.
func served(ctx context.Context, i int) (string, error) {
	url := fmt.Sprintf("http://192.0.2.1%d:8080/", i)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return "", fmt.Errorf("h%d: GET %s: %w", i, url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body) // only the header matters
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("h%d: GET %s: %s", i, url, resp.Status)
	}
	return resp.Header.Get("X-Release"), nil
}

// expect checks that host i serves want[i-1] on its own address (a few
// requests each: both colours answer while a swap overlaps, and none may
// run now).
func (l *lab) expect(ctx context.Context, want ...string) error {
	var errs []error
	for i, w := range want {
		for range 5 {
			got, err := served(ctx, i+1)
			if err != nil {
				errs = append(errs, err)
				break
			}
			if got != w {
				errs = append(errs, fmt.Errorf("h%d serves %s, want %s", i+1, got, w))
				break
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Printf("serving: h1 %s, h2 %s, h3 %s\n", want[0], want[1], want[2])
	return nil
}

// waitBalanced waits until HAProxy has sent requests to all three hosts
// (its X-Fleet-Host header names the one that answered).
func (l *lab) waitBalanced(ctx context.Context) error {
	seen := map[string]bool{}
	deadline := time.Now().Add(60 * time.Second)
	for len(seen) < 3 {
		if time.Now().After(deadline) {
			return fmt.Errorf("HAProxy sent requests only to %v within 60 s", seen)
		}
		resp, err := http.Get(l.lb)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body) // only the header matters
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				seen[resp.Header.Get("X-Fleet-Host")] = true
				continue
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

func step(format string, args ...any) {
	fmt.Printf("\n==> "+format+"\n", args...)
}
