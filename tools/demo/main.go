// Command beamdeploy-demo is what `make demo` runs inside the sandboxed
// systemd: it sets up examples/hello with beamdeploy, then swaps between
// two releases under loopback load, hot-upgrades the serving unit to a
// third one, and prints what happened.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/loadgen"
	"github.com/beamdeploy/beamdeploy/internal/swap"
)

func main() {
	bin := flag.String("beamdeploy", "bin/beamdeploy", "beamdeploy binary")
	dist := flag.String("dist", "dist", "directory with hello-1.0.0.tar.gz and hello-1.1.0.tar.gz")
	swaps := flag.Int("swaps", 10, "number of swaps under load")
	addr := flag.String("listen", "127.0.0.1:8080", "loopback address for the app")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *bin, *dist, *addr, *swaps); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, bin, dist, addr string, swaps int) error {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	step("beamdeploy init hello --listen %s --exec bin/hello", addr)
	if err := show(ctx, bin, "init", "hello", "--listen", addr, "--exec", "bin/hello", "--drain-timeout", "10s", "--force"); err != nil {
		return err
	}
	releases := []string{filepath.Join(dist, "hello-1.0.0.tar.gz"), filepath.Join(dist, "hello-1.1.0.tar.gz")}
	step("first upgrade: starts the first instance")
	if _, err := upgrade(ctx, bin, "upgrade", releases[0]); err != nil {
		return err
	}
	step("%d swaps and a hot upgrade under load (keep-alive POST + one connection per GET, 4 clients each)", swaps)
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var ka, nc loadgen.Stats
	url := "http://" + addr + "/"
	wg.Go(func() {
		ka = loadgen.Run(loadCtx, loadgen.Options{URL: url, Method: "POST", Body: []byte("demo"), KeepAlive: true, Duration: 10 * time.Minute, MaxRequests: 5_000_000})
	})
	wg.Go(func() {
		nc = loadgen.Run(loadCtx, loadgen.Options{URL: url, Duration: 10 * time.Minute, MaxRequests: 5_000_000})
	})
	time.Sleep(500 * time.Millisecond)
	fmt.Printf("\n%-4s %-11s %-8s %-26s %-26s %9s %9s %9s\n", "swap", "kind", "release", "from", "to", "ready", "stop", "total")
	var swapErr error
	// swaps blue-green swaps between the two releases, then one hot upgrade
	// to the third inside the serving unit.
	for i := range swaps + 1 {
		cmd, tarball := "upgrade", releases[(i+1)%2]
		if i == swaps {
			cmd, tarball = "hot-upgrade", filepath.Join(dist, "hello-1.2.0.tar.gz")
		}
		res, err := upgrade(ctx, bin, cmd, tarball)
		if err != nil {
			swapErr = err
			break
		}
		fmt.Printf("%-4d %-11s %-8s %-26s %-26s %9s %9s %9s\n", i+1, res.Kind, res.Release, instance(res.From), instance(res.To),
			ms(res.Ready), ms(res.Stop), ms(res.Total))
		time.Sleep(300 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	stopLoad()
	wg.Wait()
	total := merge(ka, nc)
	fmt.Printf("\nkeep-alive POST:   %s\nnew-connection GET: %s\n%s\n", ka, nc, total)
	for _, e := range total.Errors {
		fmt.Println("  error:", e)
	}
	step("beamdeploy status hello")
	_ = show(ctx, bin, "status", "hello") // informational
	if swapErr != nil {
		return swapErr
	}
	if total.Failed > 0 {
		return fmt.Errorf("%d requests failed", total.Failed)
	}
	return nil
}

func merge(a, b loadgen.Stats) loadgen.Stats {
	t := loadgen.Stats{Sent: a.Sent + b.Sent, OK: a.OK + b.OK, Failed: a.Failed + b.Failed, ByClass: map[string]int64{}}
	for _, s := range []loadgen.Stats{a, b} {
		for k, v := range s.ByClass {
			t.ByClass[k] += v
		}
		t.Errors = append(t.Errors, s.Errors...)
	}
	return t
}

func step(format string, args ...any) {
	fmt.Printf("\n==> "+format+"\n", args...)
}

func show(ctx context.Context, bin string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("beamdeploy %v: %w", args, err)
	}
	return nil
}

// upgrade runs `beamdeploy --json CMD hello TARBALL` (CMD upgrade or
// hot-upgrade) and returns its result.
func upgrade(ctx context.Context, bin, cmdName, tarball string) (control.Result, error) {
	cmd := exec.CommandContext(ctx, bin, "--json", cmdName, "hello", tarball)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	runErr := cmd.Run()
	var res control.Result
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var m control.Result
		if json.Unmarshal(sc.Bytes(), &m) == nil && m.MessageType == control.TypeResult {
			res = m
		}
	}
	if runErr != nil {
		return res, fmt.Errorf("%s to %s: %w", cmdName, tarball, runErr)
	}
	if res.MessageType == "" {
		return res, errors.New("upgrade printed no result")
	}
	if res.From == nil {
		fmt.Printf("hello %s serving on %s (ready in %s)\n", res.Release, res.To.Unit, ms(res.Ready))
	}
	return res, nil
}

// instance names an instance as "unit (pid N)".
func instance(i *swap.Instance) string {
	if i == nil {
		return "-"
	}
	return fmt.Sprintf("%s (%d)", strings.TrimSuffix(i.Unit, ".service"), i.PID)
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }
