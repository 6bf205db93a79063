package e2e_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/loadgen"
	"github.com/beamdeploy/beamdeploy/internal/swap"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func (a *app) releases() map[string]string {
	a.t.Helper()
	out, err := exec.Command(a.bin, "--json", "releases", a.name).Output()
	require.NoError(a.t, err)
	var rs control.Releases
	require.NoError(a.t, json.Unmarshal(out, &rs))
	m := map[string]string{}
	for _, r := range rs.Releases {
		m[r.Version] = r.State
	}
	return m
}

func TestSystemdStageReloadRollbackUnderLoad(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.mustUpgrade(release(t, "1.0.0"))
	out, err := a.run("stage", a.name, release(t, "1.1.0"))
	require.NoError(t, err, out)
	assert.Equal(t, map[string]string{"1.0.0": "active", "1.1.0": "available"}, a.releases())
	requireServing(t, a, "1.0.0")

	ctx, stop := context.WithCancel(t.Context())
	var st loadgen.Stats
	var wg sync.WaitGroup
	wg.Go(func() {
		st = loadgen.Run(ctx, loadgen.Options{URL: "http://" + a.addr + "/", KeepAlive: true, Method: "POST", Body: []byte("x"), Duration: 2 * time.Minute, MaxRequests: 1_000_000})
	})
	time.Sleep(200 * time.Millisecond)
	out2, err := exec.Command("systemctl", "reload", a.name+".service").CombinedOutput()
	require.NoError(t, err, string(out2))
	requireServing(t, a, "1.1.0")
	assert.Equal(t, map[string]string{"1.0.0": "previous", "1.1.0": "active"}, a.releases())

	out, err = a.run("rollback", a.name)
	require.NoError(t, err, out)
	requireServing(t, a, "1.0.0")
	out, err = a.run("rollback", a.name, "--to", "1.1.0")
	require.NoError(t, err, out)
	time.Sleep(200 * time.Millisecond)
	stop()
	wg.Wait()
	t.Logf("%s", st)
	assert.Zero(t, st.Failed, "errors: %v", st.Errors)
	requireServing(t, a, "1.1.0")
}

func TestSystemdReleaseVerification(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.mustUpgrade(release(t, "1.0.0"))

	// A release whose command is a binary for another architecture.
	foreign := release(t, "2.0.0")
	rewriteMachine(t, foreign)
	out, err := a.run("upgrade", a.name, foreign)
	require.Error(t, err)
	assert.Contains(t, out, "ELF binary for EM_")
	assert.NotContains(t, a.releases(), "2.0.0", "nothing staged")

	// A checksum file beside the tarball that does not match.
	v3 := release(t, "3.0.0")
	require.NoError(t, os.WriteFile(v3+".sha256", []byte(hex.EncodeToString(make([]byte, 32))+"  hello-3.0.0.tar.gz\n"), 0o644))
	out, err = a.run("upgrade", a.name, v3)
	require.Error(t, err)
	assert.Contains(t, out, "checksum mismatch")
	// ...and one that does.
	b, err := os.ReadFile(v3)
	require.NoError(t, err)
	sum := sha256.Sum256(b)
	require.NoError(t, os.WriteFile(v3+".sha256", []byte(hex.EncodeToString(sum[:])+"  hello-3.0.0.tar.gz\n"), 0o644))
	a.mustUpgrade(v3)
	requireServing(t, a, "3.0.0")

	// A manifest inside the tarball sets the command for its release.
	bin, err := os.ReadFile(helloBin(t, "4.0.0"))
	require.NoError(t, err)
	v4 := filepath.Join(t.TempDir(), "hello-4.0.0.tar.gz")
	writeTarball(t, v4, map[string][]byte{"beamdeploy.json": []byte(`{"version":"4.0.0","command":["sbin/hello-alt"]}`), "sbin/hello-alt": bin})
	a.mustUpgrade(v4)
	requireServing(t, a, "4.0.0")
}

// rewriteMachine rebuilds tarball with bin/hello claiming to be an aarch64
// binary.
func rewriteMachine(t *testing.T, tarball string) {
	t.Helper()
	bin, err := os.ReadFile(helloBin(t, "2.0.0"))
	require.NoError(t, err)
	bin[18], bin[19] = 183, 0 // e_machine = EM_AARCH64
	writeTarball(t, tarball, map[string][]byte{"bin/hello": bin})
}

func writeTarball(t *testing.T, path string, files map[string][]byte) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	// Sorted, so that the same files always make the same tarball (sha256):
	// staging the same version twice must find identical content.
	for _, name := range slices.Sorted(maps.Keys(files)) {
		data := files[name]
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(data))}))
		_, err := tw.Write(data)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
}

func TestSystemdDiskFullDuringStaging(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	dir := config.Paths{}.StateDir(a.name)
	require.NoError(t, exec.Command("mount", "-t", "tmpfs", "-o", "size=100m", "bdtest-full", dir).Run())
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() }) // cleanup
	a.mustUpgrade(release(t, "1.0.0"))

	bin, err := os.ReadFile(helloBin(t, "2.0.0"))
	require.NoError(t, err)
	filler := make([]byte, 90<<20) // incompressible, so the tarball is big too
	_, _ = rand.NewChaCha8([32]byte{1}).Read(filler)
	big := filepath.Join(t.TempDir(), "hello-2.0.0.tar.gz")
	writeTarball(t, big, map[string][]byte{"bin/hello": bin, "data/blob": filler})

	loadDuring(t, a, func() {
		out, err := a.run("upgrade", a.name, big)
		require.Error(t, err)
		assert.Contains(t, out, "not enough disk space")
	})
	assert.NotContains(t, a.releases(), "2.0.0")
	entries, err := os.ReadDir(filepath.Join(dir, "staging"))
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing partial left in staging")
	requireServing(t, a, "1.0.0")
}

// statusNow is the app's status, or ok false; it does not fail the test,
// so that Eventually may call it.
func (a *app) statusNow() (st control.Status, ok bool) {
	out, err := exec.CommandContext(a.t.Context(), a.bin, "--json", "status", a.name).Output()
	return st, err == nil && json.Unmarshal(out, &st) == nil
}

// `stage --force` of the release a swap is starting is refused, saying it
// is in use, and the swap completes with the files it chose.
func TestSystemdStageForceOfAStartingSwapsTargetIsRefused(t *testing.T) {
	t.Parallel()
	a := newApp(t, "--ready-timeout", "60s", "--force")
	a.mustUpgrade(release(t, "1.0.0"))
	slow := release(t, "2.0.0", "HELLO_READY_DELAY=8s") // bin/hello is a wrapper of bin/hello.real; starting lasts 8 s
	other := release(t, "2.0.0")                        // same name, other content
	orig, err := os.ReadFile(slow)
	require.NoError(t, err)
	sum := sha256.Sum256(orig)

	loadDuring(t, a, func() {
		type outcome struct {
			res    control.Result
			stderr string
			err    error
		}
		done := make(chan outcome, 1)
		go func() { res, stderr, err := a.upgrade(slow); done <- outcome{res, stderr, err} }()
		require.Eventually(t, func() bool {
			st, ok := a.statusNow()
			return ok && st.Phase == swap.PhaseStarting && st.Target == "2.0.0"
		}, 30*time.Second, 20*time.Millisecond, "the swap starts 2.0.0")

		out, err := a.run("stage", a.name, other, "--force")
		assert.Equal(t, 6, exitCode(err), out)
		assert.Contains(t, out, "release 2.0.0 is used by swap ")
		assert.Contains(t, out, "in use")
		st, ok := a.statusNow()
		require.True(t, ok)
		assert.Equal(t, swap.PhaseStarting, st.Phase, "refused while the swap was starting")

		o := <-done
		require.NoError(t, o.err, o.stderr)
		assert.True(t, o.res.OK)
	})
	requireServing(t, a, "2.0.0")
	var rs control.Releases
	b, err := exec.Command(a.bin, "--json", "releases", a.name).Output()
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &rs))
	for _, r := range rs.Releases {
		if r.Version == "2.0.0" {
			assert.Equal(t, hex.EncodeToString(sum[:]), r.SHA256, "the original release")
		}
	}
	_, err = os.Stat(filepath.Join(config.Paths{}.StateDir(a.name), "releases", "2.0.0", "bin", "hello.real"))
	assert.NoError(t, err, "the original files")
}
