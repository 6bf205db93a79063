package safefile_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/beamdeploy/beamdeploy/internal/safefile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteReplacesAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	require.NoError(t, safefile.Write(p, []byte("one"), 0o600))
	require.NoError(t, safefile.Write(p, []byte("two"), 0o640))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	assert.Equal(t, "two", string(b))
	fi, err := os.Stat(p)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o640), fi.Mode().Perm())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temp files left behind")
}

func TestWriteMissingDir(t *testing.T) {
	err := safefile.Write(filepath.Join(t.TempDir(), "nope", "x"), nil, 0o600)
	require.ErrorIs(t, err, os.ErrNotExist)
}

// Dir sets the modes it was asked for, not what the umask leaves, on the
// directories it creates and on the one it was given; existing parents
// keep theirs.
func TestDirModesIgnoreTheUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	base := t.TempDir()
	require.NoError(t, os.Chmod(base, 0o711))
	dir := filepath.Join(base, "a", "b")
	require.NoError(t, safefile.Dir(dir, 0o755))
	for _, d := range []string{filepath.Join(base, "a"), dir} {
		fi, err := os.Stat(d)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o755), fi.Mode().Perm(), d)
	}
	require.NoError(t, os.Chmod(dir, 0o700))
	require.NoError(t, safefile.Dir(dir, 0o755))
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), fi.Mode().Perm(), "an existing directory gets perm")
	fi, err = os.Stat(base)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o711), fi.Mode().Perm(), "an existing parent keeps its mode")
}
