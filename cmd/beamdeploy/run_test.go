package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/swap"
)

// parentAt answers the control API of the apps it serves as their parents
// would, with the answers a test sets; it records the requests it got.
type parentAt struct {
	mux *http.ServeMux

	mu   sync.Mutex
	got  []string // "METHOD PATH?QUERY"
	body []string // each request's body
}

// newParentCLI returns a CLI whose paths lie in a fresh directory, where
// app is set up (its config file) and served by a parentAt.
func newParentCLI(t *testing.T, app string) (*testCLI, *parentAt) {
	t.Helper()
	dir, err := os.MkdirTemp("", "bdcli") // short: a socket path has at most 108 bytes
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) }) // best effort, a temp dir
	c := newTestCLI(config.Paths{Etc: dir, Units: dir, State: dir, Run: dir})
	p := &parentAt{mux: http.NewServeMux()}
	require.NoError(t, os.WriteFile(c.paths.Config(app), []byte("{}"), 0o644))
	require.NoError(t, os.MkdirAll(c.paths.RunDir(app), 0o755))
	ln, err := net.Listen("unix", c.paths.ControlSocket(app))
	require.NoError(t, err)
	srv := &http.Server{Handler: p}
	go func() { _ = srv.Serve(ln) }() // ends with Close
	t.Cleanup(func() { _ = srv.Close() })
	return c, p
}

func (p *parentAt) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body) // a test's own request
	p.mu.Lock()
	p.got = append(p.got, strings.TrimSuffix(r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery, "?"))
	p.body = append(p.body, string(b))
	p.mu.Unlock()
	p.mux.ServeHTTP(w, r)
}

// answer answers pattern ("METHOD /path") with messages, one JSON line
// each, as a stream or a single object.
func (p *parentAt) answer(pattern string, status int, messages ...any) {
	p.mux.HandleFunc(pattern, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		for _, m := range messages {
			_ = json.NewEncoder(w).Encode(m) // the client hung up: its test fails
		}
	})
}

// last is the last request and its body.
func (p *parentAt) last() (string, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.got) == 0 {
		return "", ""
	}
	return p.got[len(p.got)-1], p.body[len(p.body)-1]
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func swapResult(kind string) control.Result {
	return control.Result{MessageType: control.TypeResult, Result: swap.Result{ID: "s-1", Kind: kind, Release: "1.2.3", Started: t0,
		From: &swap.Instance{Unit: "hello@blue.service", PID: 41}, To: &swap.Instance{Unit: "hello@green.service", PID: 42},
		Ready: 120 * time.Millisecond, Stop: 30 * time.Millisecond, Total: 200 * time.Millisecond, OK: true}}
}

func progress(msg string) control.Progress {
	return control.Progress{MessageType: control.TypeProgress, Event: swap.Event{Elapsed: 100 * time.Millisecond, Message: msg}}
}

// status, also with --json and without APP (list), and history read
// GET /v1/status.
func TestRunStatusListHistory(t *testing.T) {
	c, p := newParentCLI(t, "hello")
	uid := 1001
	st := control.Status{MessageType: control.TypeStatus, App: "hello", ParentPID: 7, Systemd: 252, FDPath: "broker", Now: t0.Add(time.Minute),
		Active: &swap.Instance{Unit: "hello@green.service", Release: "1.2.3", PID: 42, Since: t0},
		Lock:   &control.Lock{Message: "migration", User: "alice", UID: uid, Since: t0},
		History: []swap.Result{{ID: "s-0", Release: "1.2.2", Started: t0.Add(-time.Hour), OK: true},
			{ID: "s-1", Release: "1.2.3", Started: t0, Error: "boom", Audit: swap.Audit{Command: "upgrade", User: "alice", UID: &uid, Message: "fix"}}}}
	st.LastSwap = &st.History[1]
	p.answer("GET /v1/status", http.StatusOK, st)

	require.Equal(t, exitOK, c.run(t, "status", "hello"), c.errOut.String())
	assert.Contains(t, c.out.String(), "active:     hello@green.service  release 1.2.3  pid 42")
	assert.Contains(t, c.out.String(), "locked:     yes, by alice (uid 1001)")
	assert.Contains(t, c.out.String(), "last swap:  s-1 blue-green to 1.2.3")
	assert.Contains(t, c.out.String(), "failed: boom")

	require.Equal(t, exitOK, c.run(t, "status", "hello", "--json"))
	var got control.Status
	require.NoError(t, json.Unmarshal(c.out.Bytes(), &got), c.out.String())
	assert.Equal(t, "hello", got.App)
	assert.Equal(t, 42, got.Active.PID)

	require.NoError(t, os.WriteFile(c.paths.Config("down"), []byte("{}"), 0o644)) // set up, its parent not running
	require.Equal(t, exitOK, c.run(t, "status"), c.errOut.String())
	assert.Regexp(t, `down\s+parent-down \(systemctl start down.service\)`, c.out.String())
	assert.Regexp(t, `hello\s+serving, locked by alice \(uid 1001\)\s+1.2.3\s+hello@green.service\s+2026-01-02 \d\d:\d\d:05 to 1.2.3, failed`, c.out.String())
	require.Equal(t, exitOK, c.run(t, "--json", "list"))
	var apps struct {
		MessageType string       `json:"message_type"`
		Apps        []appSummary `json:"apps"`
	}
	require.NoError(t, json.Unmarshal(c.out.Bytes(), &apps), c.out.String())
	require.Len(t, apps.Apps, 2)
	assert.Equal(t, "parent-down", apps.Apps[0].State)
	assert.Equal(t, "serving", apps.Apps[1].State)

	require.Equal(t, exitOK, c.run(t, "history", "hello", "-n", "1"))
	assert.Regexp(t, `upgrade\s+blue-green\s+1.2.3\s+failed\s+alice \(uid 1001\)\s+-\s+fix`, c.out.String())
	assert.NotContains(t, c.out.String(), "1.2.2")
	require.Equal(t, exitOK, c.run(t, "--json", "history", "hello"))
	var h struct {
		Swaps []swap.Result `json:"swaps"`
	}
	require.NoError(t, json.Unmarshal(c.out.Bytes(), &h))
	assert.Equal(t, []string{"s-1", "s-0"}, []string{h.Swaps[0].ID, h.Swaps[1].ID})
}

// A list of no apps says how to set one up.
func TestRunListOfNoApps(t *testing.T) {
	dir := t.TempDir()
	c := newTestCLI(config.Paths{Etc: filepath.Join(dir, "none"), Run: dir})
	require.Equal(t, exitOK, c.run(t, "list"))
	assert.Contains(t, c.out.String(), "no apps on this host; set one up with: beamdeploy init")
}

// upgrade uploads the tarball (here from stdin) with its name, version
// and message, prints progress on stderr and the result on stdout.
func TestRunUpgradeFromStdin(t *testing.T) {
	c, p := newParentCLI(t, "hello")
	p.answer("POST /v1/upgrade", http.StatusOK, progress("starting hello@green.service"), swapResult(swap.KindBlueGreen))
	c.stdin = strings.NewReader("TARBALL")
	require.Equal(t, exitOK, c.run(t, "upgrade", "hello", "-", "--version", "1.2.3", "-m", "fix login"), c.errOut.String())
	req, body := p.last()
	assert.Equal(t, "POST /v1/upgrade?filename=hello.tar.gz&message=fix+login&version=1.2.3", req)
	assert.Equal(t, "TARBALL", body)
	assert.Equal(t, "[  0.10s] starting hello@green.service\n", c.errOut.String())
	assert.Equal(t, "hello swapped to 1.2.3: hello@green.service ready in 120ms, hello@blue.service stopped in 30ms; total 200ms\n", c.out.String())
}

// hot-upgrade sends the checksum from TARBALL.sha256; with --json,
// progress and result are JSON lines on stdout.
func TestRunHotUpgradeJSON(t *testing.T) {
	c, p := newParentCLI(t, "hello")
	p.answer("POST /v1/hot-upgrade", http.StatusOK, progress("ordering"), swapResult(swap.KindHot))
	tarball := filepath.Join(t.TempDir(), "hello-1.2.3.tar.gz")
	require.NoError(t, os.WriteFile(tarball, []byte("TARBALL"), 0o644))
	require.NoError(t, os.WriteFile(tarball+".sha256", []byte("ab12  hello-1.2.3.tar.gz\n"), 0o644))

	require.Equal(t, exitOK, c.run(t, "hot-upgrade", "hello", tarball, "--json"), c.errOut.String())
	req, body := p.last()
	assert.Equal(t, "POST /v1/hot-upgrade?filename=hello-1.2.3.tar.gz&sha256=ab12", req)
	assert.Equal(t, "TARBALL", body)
	lines := strings.Split(strings.TrimSpace(c.out.String()), "\n")
	require.Len(t, lines, 2, c.out.String())
	assert.Contains(t, lines[0], `"message_type":"progress"`)
	var res control.Result
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &res))
	assert.Equal(t, control.TypeResult, res.MessageType)
	assert.Equal(t, swap.KindHot, res.Kind)
	assert.Empty(t, c.errOut.String())

	require.Equal(t, exitOK, c.run(t, "hot-upgrade", "hello", tarball))
	assert.Equal(t, "hello hot-upgraded to 1.2.3 in hello@green.service: pid 42 replaced pid 41; handover 120ms (until the old process exited), total 200ms\n", c.out.String())

	assert.Equal(t, exitFailure, c.run(t, "upgrade", "hello", filepath.Join(t.TempDir(), "hello-1.0.0.tar.gz")))
	assert.Contains(t, c.errOut.String(), "open release: ")
}

// A detached swap prints how to follow it; wait follows it.
func TestRunDetachAndWait(t *testing.T) {
	c, p := newParentCLI(t, "hello")
	p.answer("POST /v1/reload", http.StatusOK, control.Detached{MessageType: control.TypeDetached, App: "hello", Swap: "s-9", Release: "1.2.3"})
	require.Equal(t, exitOK, c.run(t, "reload", "hello", "--detach"), c.errOut.String())
	req, _ := p.last()
	assert.Equal(t, "POST /v1/reload?detach=1", req)
	assert.Equal(t, "hello: swap s-9 to release 1.2.3 goes on without this command; follow it with: beamdeploy wait hello s-9\n", c.out.String())
	require.Equal(t, exitOK, c.run(t, "--json", "reload", "hello", "--detach"))
	assert.JSONEq(t, `{"message_type":"detached","app":"hello","swap":"s-9","release":"1.2.3"}`, c.out.String())

	first := swapResult(swap.KindBlueGreen)
	first.From = nil
	p.answer("GET /v1/wait", http.StatusOK, first)
	require.Equal(t, exitOK, c.run(t, "wait", "hello", "s-9"), c.errOut.String())
	req, _ = p.last()
	assert.Equal(t, "GET /v1/wait?swap=s-9", req)
	assert.Equal(t, "hello 1.2.3 is serving on hello@green.service (ready in 120ms)\n", c.out.String())
}

// A swap the parent rolled back exits 3 with the new unit's journal, on
// stderr; with --json as an exit_error object.
func TestRunRolledBack(t *testing.T) {
	c, p := newParentCLI(t, "hello")
	p.answer("POST /v1/rollback", http.StatusOK, progress("starting"), control.Error{MessageType: control.TypeError, Code: control.CodeRolledBack,
		Message: "hello@green.service failed to start", Unit: "hello@green.service", Journal: []string{"panic: boom", "exit 2"}})
	assert.Equal(t, control.ExitRolledBack, c.run(t, "rollback", "hello", "--to", "1.2.2"))
	req, _ := p.last()
	assert.Equal(t, "POST /v1/rollback?to=1.2.2", req)
	assert.Empty(t, c.out.String())
	assert.Contains(t, c.errOut.String(), "beamdeploy: hello@green.service failed to start\n\nlast 2 journal lines of hello@green.service:\n  panic: boom\n")

	assert.Equal(t, control.ExitRolledBack, c.run(t, "rollback", "hello", "--json"))
	var e map[string]any
	require.NoError(t, json.Unmarshal(c.errOut.Bytes(), &e), c.errOut.String())
	assert.Equal(t, "exit_error", e["message_type"])
	assert.InDelta(t, control.ExitRolledBack, e["code"], 0)
	assert.Equal(t, []any{"panic: boom", "exit 2"}, e["journal"])

	p.answer("POST /v1/reload", http.StatusConflict, control.Error{MessageType: control.TypeError, Code: control.CodeSwapInProgress, Message: "a swap is in progress"})
	assert.Equal(t, control.ExitSwapInProgress, c.run(t, "reload", "hello"))
}

// stage and releases.
func TestRunStageAndReleases(t *testing.T) {
	c, p := newParentCLI(t, "hello")
	p.answer("POST /v1/stage", http.StatusOK, progress("staging: 3 files"), control.Staged{MessageType: control.TypeStaged, Version: "1.2.3", Files: 3, Size: 2_500_000})
	c.stdin = strings.NewReader("TARBALL")
	require.Equal(t, exitOK, c.run(t, "stage", "hello", "-", "--version", "1.2.3", "--force"), c.errOut.String())
	req, _ := p.last()
	assert.Equal(t, "POST /v1/stage?filename=hello.tar.gz&force=1&version=1.2.3", req)
	assert.Equal(t, "staged hello 1.2.3 (3 files, 2.5 MB); swap to it with: systemctl reload hello\n", c.out.String())

	p.answer("GET /v1/releases", http.StatusOK, control.Releases{MessageType: control.TypeReleases, Releases: []control.ReleaseInfo{
		{Version: "1.2.3", State: "active", Size: 2_500_000, StagedAt: t0, DeployedAt: t0, Compat: "v1", Hot: "successor"},
		{Version: "1.2.2", State: "previous", Size: 1_000_000, StagedAt: t0}}})
	require.Equal(t, exitOK, c.run(t, "releases", "hello"), c.errOut.String())
	lines := strings.Split(strings.TrimSpace(c.out.String()), "\n")
	require.Len(t, lines, 3)
	assert.Regexp(t, `^VERSION\s+STATE\s+SIZE\s+STAGED\s+DEPLOYED\s+HOT$`, lines[0])
	assert.Regexp(t, `^1.2.3\s+active\s+2.5M\s+2026-01-02 \d\d:\d\d:05\s+2026-01-02 \d\d:\d\d:05\s+v1 successor$`, lines[1])
	assert.Regexp(t, `^1.2.2\s+previous\s+1.0M\s+2026-01-02 \d\d:\d\d:05\s+-\s+-$`, lines[2])
	require.Equal(t, exitOK, c.run(t, "releases", "hello", "--json"))
	assert.Contains(t, c.out.String(), `"message_type":"releases"`)
}

// handoff put reads VALUE - from stdin; get prints the raw value; list
// quotes text and counts binary values.
func TestRunHandoff(t *testing.T) {
	c, p := newParentCLI(t, "hello")
	p.mux.HandleFunc("PUT /v1/handoff/{key}", func(http.ResponseWriter, *http.Request) {})
	p.mux.HandleFunc("DELETE /v1/handoff/{key}", func(http.ResponseWriter, *http.Request) {})
	p.mux.HandleFunc("GET /v1/handoff/{key}", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("v\x00")) })
	p.answer("GET /v1/handoff", http.StatusOK, control.Handoff{MessageType: control.TypeHandoff, Entries: map[string][]byte{"b": {0xff, 0}, "a": []byte("7\n")}})

	c.stdin = strings.NewReader("from stdin\n")
	require.Equal(t, exitOK, c.run(t, "handoff", "hello", "put", "k", "-"), c.errOut.String())
	req, body := p.last()
	assert.Equal(t, "PUT /v1/handoff/k", req)
	assert.Equal(t, "from stdin\n", body)
	require.Equal(t, exitOK, c.run(t, "handoff", "hello", "put", "k", "7"))
	_, body = p.last()
	assert.Equal(t, "7", body)

	require.Equal(t, exitOK, c.run(t, "handoff", "hello", "get", "k"))
	assert.Equal(t, "v\x00", c.out.String())
	require.Equal(t, exitOK, c.run(t, "handoff", "hello", "get", "k", "--json"))
	assert.JSONEq(t, `{"message_type":"handoff_value","key":"k","value":"dgA="}`, c.out.String())

	require.Equal(t, exitOK, c.run(t, "handoff", "hello", "list"))
	assert.Equal(t, "a\t\"7\\n\"\nb\t(2 bytes of binary data)\n", c.out.String())
	require.Equal(t, exitOK, c.run(t, "--json", "handoff", "hello", "list"))
	assert.JSONEq(t, `{"message_type":"handoff","entries":{"a":"Nwo=","b":"/wA="}}`, c.out.String())

	require.Equal(t, exitOK, c.run(t, "handoff", "hello", "delete", "k"))
	req, _ = p.last()
	assert.Equal(t, "DELETE /v1/handoff/k", req)
}

// lock and unlock print the lock as it is afterwards.
func TestRunLockUnlock(t *testing.T) {
	c, p := newParentCLI(t, "hello")
	p.answer("POST /v1/lock", http.StatusOK, control.LockState{MessageType: "lock", App: "hello", Swap: "s-3",
		Lock: &control.Lock{Message: "migration", User: "alice", UID: 1001, Since: t0}})
	p.answer("DELETE /v1/lock", http.StatusOK, control.LockState{MessageType: "lock", App: "hello"})

	require.Equal(t, exitOK, c.run(t, "lock", "hello", "-m", "migration"), c.errOut.String())
	_, body := p.last()
	assert.JSONEq(t, `{"message":"migration"}`, body)
	assert.Equal(t, "hello is locked by alice (uid 1001): migration; swaps are refused until: beamdeploy unlock hello\n"+
		"swap s-3 was already running; the lock does not stop it (follow it with: beamdeploy status hello)\n", c.out.String())
	require.Equal(t, exitOK, c.run(t, "unlock", "hello"))
	assert.Equal(t, "hello is unlocked\n", c.out.String())
	require.Equal(t, exitOK, c.run(t, "unlock", "hello", "--json"))
	assert.JSONEq(t, `{"message_type":"lock","app":"hello","lock":null}`, c.out.String())
}

func TestRunVersion(t *testing.T) {
	c := newTestCLI(config.Paths{})
	require.Equal(t, exitOK, c.run(t, "version"))
	assert.Regexp(t, `^beamdeploy dev \(go1\.\d+`, c.out.String())
	require.Equal(t, exitOK, c.run(t, "version", "--json"))
	var v map[string]string
	require.NoError(t, json.Unmarshal(c.out.Bytes(), &v), c.out.String())
	assert.Equal(t, "version", v["message_type"])
	assert.Equal(t, version, v["version"])
}

// man and completion print what the CLI definition makes of itself.
func TestRunDocs(t *testing.T) {
	c := newTestCLI(config.Paths{})
	for args, want := range map[string]string{"man": ".TH BEAMDEPLOY 1", "man config": ".TH BEAMDEPLOY.JSON 5",
		"completion bash": "complete -F _beamdeploy beamdeploy", "completion zsh": "#compdef beamdeploy"} {
		require.Equal(t, exitOK, c.run(t, strings.Fields(args)...))
		assert.Contains(t, c.out.String(), want, args)
	}
}

// init --no-start writes the config and units and says what is next;
// check finds what is missing and remove refuses an app that is not there.
func TestRunInitCheckRemove(t *testing.T) {
	dir := t.TempDir()
	c := newTestCLI(config.Paths{Etc: filepath.Join(dir, "etc"), Units: filepath.Join(dir, "units"), State: filepath.Join(dir, "state"), Run: dir})
	require.Equal(t, exitOK, c.run(t, "init", "hello", "--listen", "8080", "--exec", "bin/hello", "--user", "root", "--no-start"), c.errOut.String())
	for _, p := range []string{c.paths.Config("hello"), filepath.Join(c.paths.UnitDir(), "hello.socket"), filepath.Join(c.paths.UnitDir(), "hello.service")} {
		assert.Contains(t, c.out.String(), "wrote "+p)
		assert.FileExists(t, p)
	}
	assert.Contains(t, c.out.String(), "next: systemctl daemon-reload && systemctl enable --now hello.socket hello.service")
	assert.Contains(t, c.errOut.String(), `instances of hello run as root ("user": "root")`)
	assert.Equal(t, exitFailure, c.run(t, "init", "hello", "--listen", "8080", "--exec", "bin/hello", "--user", "root", "--no-start"))
	assert.Contains(t, c.errOut.String(), "refusing to overwrite")

	require.NoError(t, os.Remove(filepath.Join(c.paths.UnitDir(), "hello.socket")))
	require.NoError(t, os.WriteFile(filepath.Join(c.paths.UnitDir(), "hello@.service"), nil, 0o644))
	assert.Equal(t, exitFailure, c.run(t, "check", "hello"))
	assert.Contains(t, c.errOut.String(), "hello.socket: missing (run: beamdeploy init hello ...)")
	assert.Contains(t, c.errOut.String(), "hello@.service: must not exist")
	assert.Contains(t, c.errOut.String(), "warning: instances of hello run as root")
	assert.Regexp(t, `beamdeploy: hello: [23] problem\(s\) found`, c.errOut.String()) // 3 where systemd-analyze runs and misses the socket too
	assert.Empty(t, c.out.String())

	assert.Equal(t, exitFailure, c.run(t, "remove", "nosuch"))
	assert.Contains(t, c.errOut.String(), "no app named nosuch on this host")
}

// history prints newest first, a short checksum, who asked (or - for
// records from before audits) and the message.
func TestHistoryTable(t *testing.T) {
	uid := 1001
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	h := []swap.Result{
		{ID: "old", Release: "0.9.0", Started: t0, OK: true},
		{ID: "a", Release: "1.0.0", Started: t0.Add(time.Hour), OK: true, SHA256: strings.Repeat("ab", 32),
			Audit: swap.Audit{Command: "upgrade", User: "alice", UID: &uid, Message: "fix login"}},
		{ID: "b", Kind: swap.KindHot, Release: "1.0.1", Started: t0.Add(2 * time.Hour), Error: "boom",
			Audit: swap.Audit{Command: "hot-upgrade", UID: &uid}},
	}
	got := newestFirst(h, 2)
	require.Len(t, got, 2)
	assert.Equal(t, []string{"b", "a"}, []string{got[0].ID, got[1].ID})
	assert.Len(t, newestFirst(h, 0), 3)
	assert.NotNil(t, newestFirst(nil, 5), "--json prints [] rather than null")

	var out bytes.Buffer
	require.NoError(t, printHistory(&out, newestFirst(h, 0)))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 4, out.String())
	assert.Regexp(t, `^TIME\s+COMMAND\s+KIND\s+RELEASE\s+OUTCOME\s+USER\s+SHA256\s+MESSAGE$`, lines[0])
	assert.Regexp(t, `hot-upgrade\s+hot\s+1\.0\.1\s+failed\s+uid 1001\s+-\s+-$`, lines[1])
	assert.Regexp(t, `upgrade\s+blue-green\s+1\.0\.0\s+ok\s+alice \(uid 1001\)\s+abababababab\s+fix login$`, lines[2])
	assert.Regexp(t, `-\s+blue-green\s+0\.9\.0\s+ok\s+-\s+-\s+-$`, lines[3])
}

// Without an active instance, status says whether none runs or a
// restarted parent has not adopted it yet.
func TestPrintStatusWithoutActive(t *testing.T) {
	var b bytes.Buffer
	printStatus(&b, control.Status{App: "hello", Adopting: true})
	assert.Contains(t, b.String(), "active:     not known yet (the parent just started")
	b.Reset()
	printStatus(&b, control.Status{App: "hello"})
	assert.Contains(t, b.String(), "active:     none (deploy with: beamdeploy upgrade hello TARBALL)")
}
