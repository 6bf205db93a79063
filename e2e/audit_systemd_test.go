package e2e_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/swap"
)

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// history runs `beamdeploy --json history APP`.
func (a *app) history() []swap.Result {
	a.t.Helper()
	out, err := exec.CommandContext(a.t.Context(), a.bin, "--json", "history", a.name, "-n", "0").Output()
	require.NoError(a.t, err)
	var h struct {
		MessageType string        `json:"message_type"`
		Swaps       []swap.Result `json:"swaps"`
	}
	require.NoError(a.t, json.Unmarshal(out, &h), string(out))
	require.Equal(a.t, control.TypeHistory, h.MessageType)
	return h.Swaps
}

// parentJournal waits (bounded) for the parent's journal entry of swap id
// whose message starts with prefix, and returns its fields.
func (a *app) parentJournal(id, prefix string) map[string]any {
	a.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := exec.CommandContext(a.t.Context(), "journalctl", "--no-pager", "-o", "json",
			"_SYSTEMD_UNIT="+a.name+".service", "BEAMDEPLOY_SWAP="+id).Output()
		require.NoError(a.t, err)
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var e map[string]any
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				if m, _ := e["MESSAGE"].(string); strings.HasPrefix(m, prefix) {
					return e
				}
			}
		}
		require.True(a.t, time.Now().Before(deadline), "no %q entry for swap %s in the parent's journal", prefix, id)
		time.Sleep(200 * time.Millisecond)
	}
}

// Every swap says who asked (root, or a member of group beamdeploy), with
// and without --message, and the tarball's sha256, in `history --json`
// and in the parent's journal. A lock refuses upgrade, reload (also
// through systemctl reload), rollback and hot-upgrade with its message and
// exit 7, under load without a failed request, survives a parent restart,
// and after unlock an upgrade works.
func TestSystemdAuditAndLocks(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	require.NoError(t, exec.Command("groupadd", "-f", "--system", "beamdeploy").Run())
	deployer := "bdaud" + strings.TrimPrefix(a.name, "e2e")
	out, err := exec.Command("useradd", "--system", "--no-create-home", "-G", "beamdeploy", deployer).CombinedOutput()
	require.NoError(t, err, string(out))
	t.Cleanup(func() { _ = exec.Command("userdel", deployer).Run() }) // cleanup
	u, err := user.Lookup(deployer)
	require.NoError(t, err)
	deployerUID, err := strconv.Atoi(u.Uid)
	require.NoError(t, err)

	v1, v2, v3 := release(t, "1.0.0"), worldReadable(t, release(t, "1.1.0")), release(t, "1.2.0")
	_, stderr, err := a.swapCommand("upgrade", v1, "-m", "first deploy")
	require.NoError(t, err, stderr)
	out2, err := a.asUser(deployer, "upgrade", a.name, v2, "--message", "ship 1.1 (TICKET-7)")
	require.NoError(t, err, out2)
	_, stderr, err = a.swapCommand("reload")
	require.NoError(t, err, stderr)

	h := a.history()
	require.Len(t, h, 3)
	type row struct {
		cmd, rel, user string
		uid            int
		msg, sum       string
	}
	var got []row
	for _, r := range h {
		require.NotNil(t, r.UID, "%+v", r)
		got = append(got, row{r.Command, r.Release, r.User, *r.UID, r.Message, r.SHA256})
	}
	sum1, sum2 := fileSHA256(t, v1), fileSHA256(t, v2)
	assert.Equal(t, []row{ // newest first
		{"reload", "1.1.0", "root", 0, "", sum2},
		{"upgrade", "1.1.0", deployer, deployerUID, "ship 1.1 (TICKET-7)", sum2},
		{"upgrade", "1.0.0", "root", 0, "first deploy", sum1},
	}, got)
	rels, err := a.run("--json", "releases", a.name)
	require.NoError(t, err, rels)
	assert.Contains(t, rels, `"sha256":"`+sum1+`"`, "the checksum is the one releases shows")

	for i, r := range h {
		e := a.parentJournal(r.ID, "swap done")
		assert.Equal(t, got[i].user, e["BEAMDEPLOY_USER"], "journal of %s", r.ID)
		assert.Equal(t, strconv.Itoa(got[i].uid), e["BEAMDEPLOY_UID"])
		assert.Equal(t, got[i].sum, e["BEAMDEPLOY_SHA256"])
		assert.Equal(t, got[i].cmd, e["BEAMDEPLOY_COMMAND"])
		if got[i].msg != "" {
			assert.Equal(t, got[i].msg, e["BEAMDEPLOY_MESSAGE"])
		} else {
			assert.NotContains(t, e, "BEAMDEPLOY_MESSAGE")
		}
	}

	// Only deployers lock; a deployer's lock stops root too.
	out2, err = a.asUser("nobody", "lock", a.name, "-m", "mine")
	require.Error(t, err)
	assert.Contains(t, out2, "permission denied")
	out2, err = a.asUser(deployer, "lock", a.name, "-m", "migration running")
	require.NoError(t, err, out2)
	locked := func(what string, out string, err error) {
		t.Helper()
		assert.Equal(t, 7, exitCode(err), "%s: exit 7 = locked; %s", what, out)
		assert.Contains(t, out, "is locked by "+deployer+" (uid "+strconv.Itoa(deployerUID)+") since ", what)
		assert.Contains(t, out, ": migration running; nothing was staged or started; unlock with: beamdeploy unlock "+a.name, what)
	}
	loadDuring(t, a, func() {
		_, stderr, err := a.swapCommand("upgrade", v3)
		locked("upgrade", stderr, err)
		_, stderr, err = a.swapCommand("reload", "-m", "try anyway")
		locked("reload", stderr, err)
		_, stderr, err = a.swapCommand("rollback")
		locked("rollback", stderr, err)
		_, stderr, err = a.swapCommand("hot-upgrade", v3)
		locked("hot-upgrade", stderr, err)
		out, err := exec.CommandContext(t.Context(), "systemctl", "reload", a.name).CombinedOutput()
		require.Error(t, err, "systemctl reload of a locked app fails: %s", out)
		requireServing(t, a, "1.1.0")
	})
	out2, err = a.run("stage", a.name, v3)
	require.NoError(t, err, "stage is allowed while locked: %s", out2)
	_, err = exec.Command("systemctl", "is-active", "--quiet", a.name+".service").Output()
	require.NoError(t, err, "a refused systemctl reload leaves the parent running")
	assert.Eventually(t, func() bool { // journald stores the line when it gets to it
		journal, _ := exec.Command("journalctl", "--no-pager", "-u", a.name+".service", "-g", "migration running").Output()
		return strings.Contains(string(journal), "is locked by")
	}, 30*time.Second, 200*time.Millisecond, "systemctl reload's refusal is in the unit's journal")

	st := a.status()
	require.NotNil(t, st.Lock)
	assert.Equal(t, control.Lock{Message: "migration running", User: deployer, UID: deployerUID, Since: st.Lock.Since}, *st.Lock)
	text, err := a.run("status", a.name)
	require.NoError(t, err)
	assert.Contains(t, text, "locked:     yes, by "+deployer)
	out, err = exec.CommandContext(t.Context(), a.bin, "--json", "list").Output()
	require.NoError(t, err)
	var listed struct {
		Apps []struct {
			App  string        `json:"app"`
			Lock *control.Lock `json:"lock"`
		} `json:"apps"`
	}
	require.NoError(t, json.Unmarshal(out, &listed))
	found := false
	for _, l := range listed.Apps {
		if l.App == a.name {
			found = true
			require.NotNil(t, l.Lock, "list shows the lock")
			assert.Equal(t, "migration running", l.Lock.Message)
		}
	}
	assert.True(t, found, "list names %s", a.name)
	assert.Len(t, a.history(), 3, "refused swaps are not swaps")

	// The lock is in the parent's state: a parent restart keeps it.
	loadDuring(t, a, func() {
		out, err := exec.Command("systemctl", "restart", a.name+".service").CombinedOutput()
		require.NoError(t, err, string(out))
		st := a.status()
		require.NotNil(t, st.Lock, "the lock survives systemctl restart")
		assert.Equal(t, "migration running", st.Lock.Message)
		_, stderr, err := a.swapCommand("upgrade", v3)
		locked("upgrade after restart", stderr, err)

		out2, err := a.asUser(deployer, "unlock", a.name)
		require.NoError(t, err, out2)
		out2, err = a.asUser(deployer, "unlock", a.name)
		require.NoError(t, err, "unlocking an unlocked app: %s", out2)
		res := a.mustUpgrade(v3)
		assert.Equal(t, fileSHA256(t, v3), res.SHA256)
	})
	requireServing(t, a, "1.2.0")
	assert.Nil(t, a.status().Lock)
	assert.Len(t, a.history(), 4)
}
