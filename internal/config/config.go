// Package config reads and writes an app's beamdeploy configuration
// (/etc/beamdeploy/APP.json) and knows where each app's files live.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"time"
)

// Defaults for Config fields left zero.
const (
	DefaultReadyTimeout = 60 * time.Second
	DefaultDrainTimeout = 30 * time.Second
	// DefaultSettle is how long a new instance must stay up after READY=1
	// before the cutover.
	DefaultSettle = 500 * time.Millisecond
)

// Default locations; Paths fields override them.
const (
	DefaultEtcDir   = "/etc/beamdeploy"
	DefaultUnitDir  = "/etc/systemd/system"
	DefaultStateDir = "/var/lib/beamdeploy"
	DefaultRunDir   = "/run/beamdeploy"
)

// ErrInvalid is matched by every validation error.
var ErrInvalid = errors.New("config: invalid")

// Config is one app's configuration.
type Config struct {
	App    string   `json:"app"`
	Listen []string `json:"listen"`
	// Exec is the app's command line; a relative program path is relative
	// to the release root.
	Exec []string `json:"exec"`
	// User runs the instances: DynamicUser (what init writes by default),
	// "root", or the name of a static user. Empty means root: configs
	// written before dynamic users keep running their app as they did.
	// RunAs turns it into unit settings.
	User string `json:"user,omitempty"`
	// ReadyTimeout bounds how long a new instance may take to send
	// READY=1; DefaultReadyTimeout when zero.
	ReadyTimeout Duration `json:"ready_timeout,omitzero"`
	// DrainTimeout bounds how long an old instance may take to exit after
	// SIGTERM before it is killed; DefaultDrainTimeout when zero.
	DrainTimeout Duration `json:"drain_timeout,omitzero"`
	// Settle is how long a new instance must keep running after READY=1
	// before the old one is stopped; a new instance that dies within it
	// rolls the swap back. DefaultSettle when absent; "0s" turns it off.
	Settle *Duration `json:"settle,omitempty"`
	// KeepReleases is how many deployed releases retention keeps
	// (DefaultKeepReleases when zero). The active release, one draining,
	// the rollback target and releases never deployed are always kept.
	KeepReleases int `json:"keep_releases,omitempty"`
	// Hooks are commands run around the cutover.
	Hooks Hooks `json:"hooks,omitzero"`
}

// DynamicUser as Config.User runs the instances under a user that systemd
// allocates for the app while it runs (DynamicUser=yes).
const DynamicUser = "dynamic"

// DeployGroup is the group whose members may deploy (besides root): the
// group of every app's control socket.
const DeployGroup = "beamdeploy"

// DefaultHookTimeout bounds a hook when Hooks.Timeout is zero.
const DefaultHookTimeout = 30 * time.Second

// Hooks are commands (argv, absolute program path) run by the parent
// during a swap. They get BEAMDEPLOY_APP, BEAMDEPLOY_SWAP, BEAMDEPLOY_HOOK,
// BEAMDEPLOY_OLD_UNIT, BEAMDEPLOY_OLD_RELEASE, BEAMDEPLOY_NEW_UNIT and
// BEAMDEPLOY_NEW_RELEASE in their environment (OLD_* empty on the first
// start) and run in the new release's directory, as User, in a process
// group of their own that is killed when the hook ends or times out.
type Hooks struct {
	// BeforeCutover runs once the new instance is ready, before the old one
	// is stopped; a non-zero exit or a timeout aborts the swap (the new
	// instance is stopped, the old one keeps serving).
	BeforeCutover []string `json:"before_cutover,omitempty"`
	// AfterCutover runs after the old instance stopped; its failure is
	// reported and undoes nothing.
	AfterCutover []string `json:"after_cutover,omitempty"`
	// Timeout bounds each hook; DefaultHookTimeout when zero.
	Timeout Duration `json:"timeout,omitzero"`
	// User runs the hooks: "root" or the name of a user. Empty means the
	// app's user (Config.User): with DynamicUser the uid and gid of the new
	// instance's process, root when Config.User is empty or "root".
	User string `json:"user,omitempty"`
}

// HookUser returns who runs the hooks: "root", DynamicUser or a user
// name (see Hooks.User).
func (c Config) HookUser() string {
	u := c.Hooks.User
	if u == "" {
		u = c.User
	}
	if u == "" {
		return "root"
	}
	return u
}

// userName is what useradd accepts by default (and what a hook user
// must look like).
var userName = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// DefaultKeepReleases is the retention default.
const DefaultKeepReleases = 5

// Keep returns the effective number of releases to keep.
func (c Config) Keep() int {
	if c.KeepReleases <= 0 {
		return DefaultKeepReleases
	}
	return c.KeepReleases
}

// HookTimeout returns the effective hook timeout.
func (c Config) HookTimeout() time.Duration { return orDefault(c.Hooks.Timeout, DefaultHookTimeout) }

// Duration is a time.Duration written as a string ("30s") in JSON.
type Duration time.Duration

// MarshalText writes d like time.Duration.String.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText parses a time.ParseDuration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Ready returns the effective ready timeout.
func (c Config) Ready() time.Duration { return orDefault(c.ReadyTimeout, DefaultReadyTimeout) }

// Drain returns the effective drain timeout.
func (c Config) Drain() time.Duration { return orDefault(c.DrainTimeout, DefaultDrainTimeout) }

// SettleTime returns the effective settle window.
func (c Config) SettleTime() time.Duration {
	if c.Settle == nil {
		return DefaultSettle
	}
	return time.Duration(*c.Settle)
}

func orDefault(d Duration, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return time.Duration(d)
}

var appName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

// ValidateApp checks that name can be used as an app name: it becomes a
// systemd unit name prefix and a directory name.
func ValidateApp(name string) error {
	if !appName.MatchString(name) {
		return fmt.Errorf("%w: app name %q: use 1-64 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit", ErrInvalid, name)
	}
	return nil
}

// Validate checks c.
func (c Config) Validate() error {
	if err := ValidateApp(c.App); err != nil {
		return err
	}
	if len(c.Exec) == 0 || c.Exec[0] == "" {
		return fmt.Errorf("%w: exec: no command (set \"exec\", e.g. [\"bin/%s\"])", ErrInvalid, c.App)
	}
	for name, argv := range map[string][]string{"before_cutover": c.Hooks.BeforeCutover, "after_cutover": c.Hooks.AfterCutover} {
		if len(argv) > 0 && !filepath.IsAbs(argv[0]) {
			return fmt.Errorf("%w: hooks.%s: %q is not an absolute path", ErrInvalid, name, argv[0])
		}
	}
	if u := c.Hooks.User; u != "" && (u == DynamicUser || !userName.MatchString(u)) {
		return fmt.Errorf("%w: hooks.user: %q: use \"root\" or a user name, or leave it out to run the hooks as the app's user", ErrInvalid, u)
	}
	if c.ReadyTimeout < 0 || c.DrainTimeout < 0 || (c.Settle != nil && *c.Settle < 0) || c.Hooks.Timeout < 0 || c.KeepReleases < 0 {
		return fmt.Errorf("%w: timeouts must not be negative", ErrInvalid)
	}
	return nil
}

// Load reads and validates a configuration file. Syntax errors, type
// errors and unknown fields are reported at their line and column; the
// file's "app" must be the app its name says (APP.json).
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	var c Config
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		ln, col := position(b, errorOffset(b, dec.InputOffset(), err))
		return Config{}, fmt.Errorf("%w: %s:%d:%d: %s", ErrInvalid, path, ln, col, plainJSONError(err))
	}
	if dec.More() {
		ln, col := position(b, dec.InputOffset())
		return Config{}, fmt.Errorf("%w: %s:%d:%d: unexpected text after the closing }", ErrInvalid, path, ln, col)
	}
	if want := strings.TrimSuffix(filepath.Base(path), ".json"); c.App != want {
		return Config{}, fmt.Errorf("%w: %s: \"app\" is %q but the file is for %q: a config file is named after its app (APP.json)", ErrInvalid, path, c.App, want)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// errorOffset finds where a decoding error is: the unknown field's own
// key, the offending value of a type error, the byte a syntax error
// stopped at, or else where the decoder stopped.
func errorOffset(b []byte, off int64, err error) int64 {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return max(se.Offset-1, 0) // Offset counts the offending byte
	case errors.As(err, &te):
		// Offset is just after the offending value; point at its start.
		return valueStart(b, te.Offset)
	}
	if m := unknownField.FindStringSubmatch(err.Error()); m != nil {
		if i := bytes.Index(b, []byte(m[1])); i >= 0 {
			return int64(i)
		}
	}
	return off
}

// valueStart walks back from end (just after a JSON value) to the value's
// first byte: past the value to the ':' or '[' or ',' before it.
func valueStart(b []byte, end int64) int64 {
	end = min(end, int64(len(b)))
	i := end - 1
	for i > 0 && !strings.ContainsRune(":[,", rune(b[i])) {
		i--
	}
	i++
	for i < end && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// plainJSONError words a decoding error for an operator editing the file.
func plainJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("%q must be %s, not a JSON %s", te.Field, jsonKind(te.Type.Kind()), te.Value)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "the file ends before the JSON object does"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64:
		return "a whole number"
	case reflect.Bool:
		return "true or false"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return k.String()
}

var unknownField = regexp.MustCompile(`unknown field (".*")$`)

// position returns the 1-based line and column of byte offset off in b.
func position(b []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(b)))
	before := b[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

// Marshal encodes c as indented JSON with a trailing newline.
func (c Config) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return append(b, '\n'), nil
}

// Paths locates an app's files. The zero value uses the defaults.
type Paths struct {
	Etc, Units, State, Run string
}

func (p Paths) or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// Config is the app's configuration file.
func (p Paths) Config(app string) string {
	return filepath.Join(p.or(p.Etc, DefaultEtcDir), app+".json")
}

// UnitDir is where the app's .socket and .service go.
func (p Paths) UnitDir() string { return p.or(p.Units, DefaultUnitDir) }

// StateDir holds the app's releases and state.
func (p Paths) StateDir(app string) string { return filepath.Join(p.or(p.State, DefaultStateDir), app) }

// RunDir holds the app's sockets.
func (p Paths) RunDir(app string) string { return filepath.Join(p.or(p.Run, DefaultRunDir), app) }

// ControlSocket is where the parent serves the control API.
func (p Paths) ControlSocket(app string) string { return filepath.Join(p.RunDir(app), "control.sock") }

// AdminSocket serves the same control API as ControlSocket to root and
// the deploy group only (mode 0660, group beamdeploy): no other user can
// connect to it, so no flood of theirs can delay a deployer.
func (p Paths) AdminSocket(app string) string { return filepath.Join(p.RunDir(app), "admin.sock") }

// BrokerSocket is where the parent hands listener fds to instances.
func (p Paths) BrokerSocket(app string) string { return filepath.Join(p.RunDir(app), "fds.sock") }
