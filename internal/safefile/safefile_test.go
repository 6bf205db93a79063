package safefile_test

import (
	"os"
	"path/filepath"
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
