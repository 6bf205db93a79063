package release

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStoreEmpty checks the store before anything was staged.
func TestStoreEmpty(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	_, err := sb.store.Get("1.0")
	require.ErrorIs(t, err, ErrNotFound)
	_, err = sb.store.Get("../1.0")
	require.ErrorIs(t, err, ErrInvalidRelease)
	list, err := sb.store.List()
	require.NoError(t, err)
	assert.Empty(t, list)
	require.ErrorIs(t, sb.store.Remove("1.0"), ErrNotFound)
	require.NoError(t, sb.store.CleanStaging())
	sb.requireOnly(t)
}

// TestStoreListRemove checks List's order and that Remove deletes one
// release completely without leftovers.
func TestStoreListRemove(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	for _, v := range []string{"2.0", "1.0", "10.0"} {
		_, err := sb.stage(t, "hello-"+v+".tar.gz", tgz(t, ent{name: "v", body: v}), StageOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, os.WriteFile(filepath.Join(sb.store.Dir, "releases", "README"), nil, 0o644))
	list, err := sb.store.List()
	require.NoError(t, err)
	require.Len(t, list, 3)
	assert.Equal(t, []string{"2.0", "1.0", "10.0"}, []string{list[0].Version, list[1].Version, list[2].Version})

	require.NoError(t, sb.store.Remove("1.0"))
	_, err = sb.store.Get("1.0")
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorIs(t, sb.store.Remove("1.0"), ErrNotFound)
	require.ErrorIs(t, sb.store.Remove(".."), ErrInvalidRelease)
	require.NoError(t, os.Remove(filepath.Join(sb.store.Dir, "releases", "README")))
	sb.requireOnly(t, "2.0", "10.0")
}

// TestStoreCorrupt checks that a release without metadata is reported as
// corrupt by Get, List and Stage, and that Stage with Force repairs it.
func TestStoreCorrupt(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	data := tgz(t, ent{name: "a", body: "a"})
	rel, err := sb.stage(t, "hello-1.0.tar.gz", data, StageOptions{})
	require.NoError(t, err)
	require.NoError(t, os.RemoveAll(filepath.Join(rel.Dir, ".beamdeploy")))

	_, err = sb.store.Get("1.0")
	require.ErrorIs(t, err, ErrCorrupt)
	_, err = sb.store.List()
	require.ErrorIs(t, err, ErrCorrupt)
	_, err = sb.stage(t, "hello-1.0.tar.gz", data, StageOptions{})
	require.ErrorIs(t, err, ErrCorrupt)

	fixed, err := sb.stage(t, "hello-1.0.tar.gz", data, StageOptions{Force: true})
	require.NoError(t, err)
	got, err := sb.store.Get("1.0")
	require.NoError(t, err)
	assert.Equal(t, fixed, got)
	sb.requireOnly(t, "1.0")
}

// TestCleanStaging checks that leftovers of a dead process are removed,
// including read-only trees, and that releases are untouched.
func TestCleanStaging(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	_, err := sb.stage(t, "hello-1.0.tar.gz", tgz(t, ent{name: "a"}), StageOptions{})
	require.NoError(t, err)
	left := filepath.Join(sb.store.Dir, "staging", "stage-2.0-123", "tree", "ro")
	require.NoError(t, os.MkdirAll(left, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(left, "f"), []byte("x"), 0o444))
	require.NoError(t, os.Chmod(left, 0o555))
	require.NoError(t, os.WriteFile(filepath.Join(sb.store.Dir, "staging", "stray"), nil, 0o600))

	require.NoError(t, sb.store.CleanStaging())
	sb.requireOnly(t, "1.0")
	_, err = sb.store.Get("1.0")
	require.NoError(t, err)
}
