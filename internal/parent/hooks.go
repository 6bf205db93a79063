package parent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/release"
	"github.com/beamdeploy/beamdeploy/internal/swap"
)

// hookOutputTail is how much of a failed hook's output is reported.
const hookOutputTail = 2048

// hooks turns the configured commands into swap hooks.
func hooks(app string, cfg config.Config, releases *release.Store) swap.Hooks {
	var h swap.Hooks
	if argv := cfg.Hooks.BeforeCutover; len(argv) > 0 {
		h.BeforeCutover = func(ctx context.Context, t swap.Transition) error {
			return runHook(ctx, app, "before_cutover", argv, cfg, releases, t)
		}
	}
	if argv := cfg.Hooks.AfterCutover; len(argv) > 0 {
		h.AfterCutover = func(ctx context.Context, t swap.Transition) error {
			return runHook(ctx, app, "after_cutover", argv, cfg, releases, t)
		}
	}
	return h
}

func runHook(ctx context.Context, app, name string, argv []string, cfg config.Config, releases *release.Store, t swap.Transition) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.HookTimeout())
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if rel, err := releases.Get(t.New.Release); err == nil {
		cmd.Dir = rel.Dir
	}
	var oldUnit, oldRelease string
	if t.Old != nil {
		oldUnit, oldRelease = t.Old.Unit, t.Old.Release
	}
	cmd.Env = append(os.Environ(),
		"BEAMDEPLOY_APP="+app, "BEAMDEPLOY_SWAP="+t.ID, "BEAMDEPLOY_HOOK="+name,
		"BEAMDEPLOY_OLD_UNIT="+oldUnit, "BEAMDEPLOY_OLD_RELEASE="+oldRelease,
		"BEAMDEPLOY_NEW_UNIT="+t.New.Unit, "BEAMDEPLOY_NEW_RELEASE="+t.New.Release)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timed out after %s", cfg.HookTimeout())
	}
	tail := strings.TrimSpace(out.String())
	if len(tail) > hookOutputTail {
		tail = "..." + tail[len(tail)-hookOutputTail:]
	}
	if tail != "" {
		return fmt.Errorf("%s hook %s: %w; output: %s", name, argv[0], err, tail)
	}
	return fmt.Errorf("%s hook %s: %w", name, argv[0], err)
}
