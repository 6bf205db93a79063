package e2e_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// requests returns X-Requests and X-Release of one request.
func (a *app) requests() (int, string) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(a.t.Context(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.addr+"/", nil)
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	require.NoError(a.t, err)
	resp.Body.Close()
	n, err := strconv.Atoi(resp.Header.Get("X-Requests"))
	require.NoError(a.t, err)
	return n, resp.Header.Get("X-Release")
}

func TestSystemdHandoffCarriesCounterAcrossSwaps(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.mustUpgrade(release(t, "1.0.0"))
	for range 20 {
		a.requests()
	}
	// The old instance writes its count while it drains; the new one reads
	// it once the old one stopped.
	a.mustUpgrade(release(t, "1.1.0"))
	var n int
	var rel string
	require.Eventually(t, func() bool { n, rel = a.requests(); return n > 20 }, 30*time.Second, 100*time.Millisecond,
		"the new instance did not inherit the count (last X-Requests %d)", n)
	assert.Equal(t, "1.1.0", rel)
	// It adds the count, then deletes the key: the key may outlive the
	// first answer that shows the count by a moment.
	require.Eventually(t, func() bool {
		out, err := a.run("handoff", a.name, "get", "hello.requests")
		return exitCode(err) == 1 && strings.Contains(out, "no such key")
	}, 30*time.Second, 100*time.Millisecond, "the successor deletes the key once it took the count over")

	a.mustUpgrade(release(t, "1.0.0"))
	require.Eventually(t, func() bool { m, _ := a.requests(); return m > n }, 30*time.Second, 100*time.Millisecond, "a second swap carries it again")
}

func TestSystemdHandoffSurvivesParentSIGKILL(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	out, err := a.run("handoff", a.name, "put", "schema", "v7")
	require.NoError(t, err, out)
	st := a.status()
	require.NoError(t, exec.Command("kill", "-9", strconv.Itoa(st.ParentPID)).Run())
	require.Eventually(t, func() bool {
		out, err := exec.Command(a.bin, "--json", "status", a.name).Output()
		return err == nil && !strings.Contains(string(out), `"parent_pid":`+strconv.Itoa(st.ParentPID)+",")
	}, 60*time.Second, 200*time.Millisecond, "systemd restarts the parent")

	out, err = a.run("handoff", a.name, "get", "schema")
	require.NoError(t, err, out)
	assert.Equal(t, "v7", out)
	raw, err := exec.Command(a.bin, "--json", "handoff", a.name, "list").Output()
	require.NoError(t, err)
	var h control.Handoff
	require.NoError(t, json.Unmarshal(raw, &h))
	assert.Equal(t, map[string][]byte{"schema": []byte("v7")}, h.Entries)

	out, err = a.run("handoff", a.name, "delete", "schema")
	require.NoError(t, err, out)
	out, err = a.run("handoff", a.name, "get", "schema")
	assert.Equal(t, 1, exitCode(err))
	assert.Contains(t, out, "no such key")
	out, err = a.run("handoff", a.name, "put", "bad key", "x")
	assert.Error(t, err)
	assert.Contains(t, out, "printable ASCII")
}
