package parent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/release"
	"github.com/beamdeploy/beamdeploy/internal/swap"
	"github.com/beamdeploy/beamdeploy/internal/units"
)

// hookOutputTail is how much of a hook's output is kept, its last bytes,
// however much it writes; a failure reports it.
const hookOutputTail = 2048

// hookKillGrace is how long a hook's process group has between SIGTERM (at
// the hook's timeout) and SIGKILL.
const hookKillGrace = 2 * time.Second

// unitLookup is what hooks ask systemd: the state of a unit.
type unitLookup interface {
	Unit(ctx context.Context, name string) (units.Unit, error)
}

// hookRunner runs the configured commands as swap hooks.
type hookRunner struct {
	app      string
	cfg      config.Config
	releases *release.Store
	units    unitLookup // for the new instance's main process (dynamic users)
}

// hooks returns the swap hooks for the configured commands.
func (h *hookRunner) hooks() swap.Hooks {
	var out swap.Hooks
	if argv := h.cfg.Hooks.BeforeCutover; len(argv) > 0 {
		out.BeforeCutover = func(ctx context.Context, t swap.Transition) error {
			return h.run(ctx, "before_cutover", argv, t)
		}
	}
	if argv := h.cfg.Hooks.AfterCutover; len(argv) > 0 {
		out.AfterCutover = func(ctx context.Context, t swap.Transition) error {
			return h.run(ctx, "after_cutover", argv, t)
		}
	}
	return out
}

// hookCred is who a hook runs as.
type hookCred struct {
	UID, GID uint32
	Groups   []uint32 // supplementary groups
}

// run runs one hook to its end: its own exit, or the timeout, after which
// its whole process group is killed (see runGroup).
func (h *hookRunner) run(ctx context.Context, name string, argv []string, t swap.Transition) error {
	cred, who, err := h.credential(ctx, t.New)
	if err != nil {
		return fmt.Errorf("%s hook %s: cannot run it as %s: %w", name, argv[0], who, err)
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.HookTimeout())
	defer cancel()
	cmd := exec.Command(argv[0], argv[1:]...)
	if rel, err := h.releases.Get(t.New.Release); err == nil {
		cmd.Dir = rel.Dir
	}
	var oldUnit, oldRelease string
	if t.Old != nil {
		oldUnit, oldRelease = t.Old.Unit, t.Old.Release
	}
	cmd.Env = append(os.Environ(),
		"BEAMDEPLOY_APP="+h.app, "BEAMDEPLOY_SWAP="+t.ID, "BEAMDEPLOY_HOOK="+name,
		"BEAMDEPLOY_OLD_UNIT="+oldUnit, "BEAMDEPLOY_OLD_RELEASE="+oldRelease,
		"BEAMDEPLOY_NEW_UNIT="+t.New.Unit, "BEAMDEPLOY_NEW_RELEASE="+t.New.Release)
	out := newTailWriter(hookOutputTail)
	err = runGroup(ctx, cmd, cred, out)
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("timed out after %s; its process group was killed", h.cfg.HookTimeout())
	}
	if tail := out.String(); tail != "" {
		return fmt.Errorf("%s hook %s (as %s): %w; output: %s", name, argv[0], who, err, tail)
	}
	return fmt.Errorf("%s hook %s (as %s): %w", name, argv[0], who, err)
}

// credential decides who runs a hook (see config.Hooks.User): nil for
// root, and who it is in words.
func (h *hookRunner) credential(ctx context.Context, inst swap.Instance) (*hookCred, string, error) {
	switch u := h.cfg.HookUser(); u {
	case "root":
		return nil, "root", nil
	case config.DynamicUser:
		cred, err := instanceCredential(ctx, h.units, inst)
		return cred, fmt.Sprintf("the dynamic user of %s (pid %d)", inst.Unit, inst.PID), err
	default:
		cred, err := lookupCredential(u)
		return cred, "user " + u, err
	}
}

// lookupCredential returns the uid, gid and supplementary groups of the
// user name.
func lookupCredential(name string) (*hookCred, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("%w: create the user, or set \"hooks\": {\"user\": ...} in the app's config", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("uid %q of user %s: %w", u.Uid, name, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("gid %q of user %s: %w", u.Gid, name, err)
	}
	cred := &hookCred{UID: uint32(uid), GID: uint32(gid)}
	ids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("groups of user %s: %w", name, err)
	}
	for _, id := range ids {
		if g, err := strconv.ParseUint(id, 10, 32); err == nil && uint32(g) != cred.GID {
			cred.Groups = append(cred.Groups, uint32(g))
		}
	}
	return cred, nil
}

// tailWriter keeps the last max bytes written to it: bounded memory
// whatever is written.
type tailWriter struct {
	max int
	buf []byte
	cut bool // earlier bytes were dropped
}

func newTailWriter(max int) *tailWriter { return &tailWriter{max: max, buf: make([]byte, 0, max)} }

func (w *tailWriter) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) > w.max {
		p, w.cut = p[len(p)-w.max:], true
	}
	if over := len(w.buf) + len(p) - w.max; over > 0 {
		w.buf, w.cut = w.buf[:copy(w.buf, w.buf[over:])], true
	}
	w.buf = append(w.buf, p...)
	return n, nil
}

// String returns the kept output, trimmed, prefixed with "..." when
// earlier output was dropped.
func (w *tailWriter) String() string {
	s := strings.TrimSpace(strings.ToValidUTF8(string(w.buf), ""))
	if w.cut && s != "" {
		s = "..." + s
	}
	return s
}
