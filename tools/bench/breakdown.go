//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/contract"
	"github.com/beamdeploy/beamdeploy/internal/sockact"
	"github.com/beamdeploy/beamdeploy/internal/units"
)

// overheadTarget is the control-plane overhead beamdeploy aims at: start
// requested → READY=1, less the app's own time to READY=1.
const overheadTarget = 25 * time.Millisecond

// rssTarget is the parent's resident set the project aims at.
const rssTargetKB = 12 * 1024

// breakdown is where one swap's start requested → READY=1 went, in ms.
// The parent logs its own readings ("instance started"), systemd keeps
// the unit's, and the exec shim writes its own (sockact.TraceEnv, set by
// the bench's drop-in); all are CLOCK_MONOTONIC.
type breakdown struct {
	Ready   float64 `json:"ready_ms"`   // as the swap reports it
	Prepare float64 `json:"prepare_ms"` // the parent, before it asks systemd (release lookup, hot record)
	Clear   float64 `json:"clear_ms"`   // the parent makes sure no leftover unit holds the name
	Create  float64 `json:"create_ms"`  // StartTransientUnit → main process forked: unit created, job run, cgroup, dynamic user
	Sandbox float64 `json:"sandbox_ms"` // fork → shim's main: systemd's set-up in the child (namespaces, mounts, credentials), exec, the shim's Go start-up
	FDs     float64 `json:"fds_ms"`     // the shim gets the listeners (the fd broker and its identity check on < 257)
	Exec    float64 `json:"exec_ms"`    // the shim places them and execs the app
	App     float64 `json:"app_ms"`     // the app: exec → READY=1 taken by systemd
	Notice  float64 `json:"notice_ms"`  // READY=1 → the parent knows
}

// pending is what the bench knows of a swap's start until the journal is
// read: the unit's systemd timestamps, read right after the swap.
type pending struct {
	swapID, unit, invocation string
	ready                    time.Duration
	forked, active           time.Duration // CLOCK_MONOTONIC
}

// unitTimes reads when systemd forked unit's main process and when it
// became active; the invocation must still be the one the swap started.
func unitTimes(ctx context.Context, p *pending) error {
	out, err := exec.CommandContext(ctx, "systemctl", "show", p.unit, "-p", "InvocationID",
		"-p", "ExecMainStartTimestampMonotonic", "-p", "ActiveEnterTimestampMonotonic").Output()
	if err != nil {
		return fmt.Errorf("systemctl show %s: %w", p.unit, err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(l, "=")
		us, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "InvocationID":
			if v != p.invocation {
				return fmt.Errorf("%s runs invocation %s, not the swap's %s", p.unit, v, p.invocation)
			}
		case "ExecMainStartTimestampMonotonic":
			p.forked = time.Duration(us) * time.Microsecond
		case "ActiveEnterTimestampMonotonic":
			p.active = time.Duration(us) * time.Microsecond
		}
	}
	return nil
}

// journalEntries returns the JSON journal entries matching match since
// since.
func journalEntries(ctx context.Context, since time.Time, match ...string) ([]map[string]any, error) {
	_ = exec.CommandContext(ctx, "journalctl", "--sync").Run() // best effort
	args := append([]string{"-o", "json", "--no-pager", "--since", fmt.Sprintf("@%d", since.Unix()-1)}, match...)
	out, err := exec.CommandContext(ctx, "journalctl", args...).Output()
	if err != nil {
		return nil, fmt.Errorf("journalctl %v: %w", match, err)
	}
	var entries []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e map[string]any
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			entries = append(entries, e)
		}
	}
	return entries, nil
}

// breakdowns completes the pending starts of app's swaps since since from
// the journal: the parent's "instance started" lines and the shims'
// traces. Starts whose lines are missing are left out.
func breakdowns(ctx context.Context, app string, since time.Time, ps []pending) ([]breakdown, error) {
	parent, err := journalEntries(ctx, since, "_SYSTEMD_UNIT="+app+".service")
	if err != nil {
		return nil, err
	}
	shims, err := journalEntries(ctx, since, "_SYSTEMD_UNIT="+app+"@blue.service", "+", "_SYSTEMD_UNIT="+app+"@green.service")
	if err != nil {
		return nil, err
	}
	started := map[string]map[string]any{} // by swap id
	for _, e := range parent {
		if e["MESSAGE"] != nil && strings.HasPrefix(fmt.Sprint(e["MESSAGE"]), "instance started") {
			started[fmt.Sprint(e["BEAMDEPLOY_SWAP"])] = e
		}
	}
	traces := map[string]sockact.Trace{} // by invocation
	for _, e := range shims {
		if t, ok := sockact.ParseTrace(fmt.Sprint(e["MESSAGE"])); ok {
			traces[fmt.Sprint(e["_SYSTEMD_INVOCATION_ID"])] = t
		}
	}
	var out []breakdown
	for _, p := range ps {
		e, ok1 := started[p.swapID]
		t, ok2 := traces[p.invocation]
		if !ok1 || !ok2 || p.forked == 0 {
			continue
		}
		d := func(k string) time.Duration { v, _ := time.ParseDuration(fmt.Sprint(e["BEAMDEPLOY_"+k])); return v }
		inStart := d("CLEAR") + d("TO_FORK") + d("TO_READY") + d("NOTICE")
		out = append(out, breakdown{Ready: ms(p.ready), Prepare: ms(p.ready - inStart), Clear: ms(d("CLEAR")), Create: ms(d("TO_FORK")),
			Sandbox: ms(t.Main - p.forked), FDs: ms(t.Listeners - t.Main), Exec: ms(t.Exec - t.Listeners), App: ms(p.active - t.Exec), Notice: ms(d("NOTICE"))})
	}
	return out, nil
}

// shimStartup measures the exec shim's own start-up outside systemd:
// spawned by the bench (root, which the fd broker serves) with the trace
// on, from just before the fork to its main and to its exec of /bin/true.
func shimStartup(ctx context.Context, bin, app string, n int) (startup, fetch float64, err error) {
	var s, f []time.Duration
	argv := contract.ExecArgv(bin, app, []string{"/bin/true"})
	for range n {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), sockact.TraceEnv+"=1")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		begin := units.Monotonic()
		if err := cmd.Run(); err != nil {
			return 0, 0, fmt.Errorf("run the exec shim: %w: %s", err, stderr.String())
		}
		t, ok := sockact.ParseTrace(strings.TrimSpace(stderr.String()))
		if !ok {
			return 0, 0, fmt.Errorf("the exec shim wrote no trace: %q", stderr.String())
		}
		s, f = append(s, t.Main-begin), append(f, t.Listeners-t.Main)
	}
	return median(s), median(f), nil
}

// medianBreakdown is the median of each part.
func medianBreakdown(bs []breakdown) breakdown {
	col := func(f func(breakdown) float64) float64 {
		v := make([]time.Duration, len(bs))
		for i, b := range bs {
			v[i] = time.Duration(f(b) * float64(time.Millisecond))
		}
		return median(v)
	}
	return breakdown{Ready: col(func(b breakdown) float64 { return b.Ready }), Prepare: col(func(b breakdown) float64 { return b.Prepare }),
		Clear: col(func(b breakdown) float64 { return b.Clear }), Create: col(func(b breakdown) float64 { return b.Create }),
		Sandbox: col(func(b breakdown) float64 { return b.Sandbox }), FDs: col(func(b breakdown) float64 { return b.FDs }),
		Exec: col(func(b breakdown) float64 { return b.Exec }), App: col(func(b breakdown) float64 { return b.App }),
		Notice: col(func(b breakdown) float64 { return b.Notice })}
}

func (b breakdown) String() string {
	return fmt.Sprintf("start→READY %.1f ms = parent %.1f + clear name %.1f + create unit→fork %.1f + fork→shim main (systemd's sandbox set-up, exec, Go start) %.1f + listeners %.1f + exec app %.1f + app→READY %.1f + READY→parent %.1f",
		b.Ready, b.Prepare, b.Clear, b.Create, b.Sandbox, b.FDs, b.Exec, b.App, b.Notice)
}

// sandboxVariant is a drop-in for the app's instances whose start the
// bench compares with the default hardening.
type sandboxVariant struct {
	Name   string `json:"name"`
	DropIn string `json:"drop_in"` // [Service] lines
}

// sandboxVariants: the default, without PrivateDevices (the costliest
// setting in the sandbox here), and without any of units.Hardening
// (DynamicUser's own ProtectSystem=strict, PrivateTmp, ... remain).
func sandboxVariants() []sandboxVariant {
	var off []string
	for _, h := range units.Hardening {
		if _, list := h.Value.([]string); list {
			off = append(off, h.Name+"=")
		} else {
			off = append(off, h.Name+"=no")
		}
	}
	return []sandboxVariant{
		{Name: "default hardening"},
		{Name: "PrivateDevices=no", DropIn: "PrivateDevices=no"},
		{Name: "none of beamdeploy's hardening settings (DynamicUser's own remain)", DropIn: strings.Join(off, "\n")},
	}
}

// sandboxCost is the median start of the instances under one variant.
type sandboxCost struct {
	sandboxVariant
	Swaps     int       `json:"swaps"`
	Breakdown breakdown `json:"median_start_breakdown"`
}

// measureSandbox swaps rounds times per variant, variants interleaved,
// without load, and returns the median breakdown of each.
func measureSandbox(ctx context.Context, bd *bdSystem, rounds int) ([]sandboxCost, error) {
	vs := sandboxVariants()
	dropIn := "/etc/systemd/system/" + bd.app + "@.service.d/bench-variant.conf"
	defer func() {
		_ = os.Remove(dropIn)                                // best effort: the scenarios after run without it
		_ = exec.Command("systemctl", "daemon-reload").Run() // likewise
	}()
	swaps := make([][]swapTiming, len(vs))
	for range rounds {
		for i, v := range vs {
			if err := os.WriteFile(dropIn, []byte("[Service]\n"+v.DropIn+"\n"), 0o644); err != nil {
				return nil, err
			}
			if out, err := exec.CommandContext(ctx, "systemctl", "daemon-reload").CombinedOutput(); err != nil {
				return nil, fmt.Errorf("daemon-reload: %w: %s", err, out)
			}
			t, err := bd.Swap(ctx)
			if err != nil {
				return nil, fmt.Errorf("swap with %s: %w", v.Name, err)
			}
			swaps[i] = append(swaps[i], t)
		}
	}
	out := make([]sandboxCost, len(vs))
	for i, v := range vs {
		var ps []pending
		for _, t := range swaps[i] {
			if t.Start != nil {
				ps = append(ps, *t.Start)
			}
		}
		bs, err := breakdowns(ctx, bd.app, swaps[0][0].Begin, ps)
		if err != nil {
			return nil, err
		}
		out[i] = sandboxCost{sandboxVariant: v, Swaps: len(bs), Breakdown: medianBreakdown(bs)}
	}
	return out, nil
}
