package handoff_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/beamdeploy/beamdeploy/internal/handoff"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFailedPersistLeavesMemoryUnchanged(t *testing.T) {
	breakers := map[string]func(t *testing.T, dir string){
		"dir removed": func(t *testing.T, dir string) {
			require.NoError(t, os.RemoveAll(dir))
		},
		"dir replaced by a file": func(t *testing.T, dir string) {
			require.NoError(t, os.RemoveAll(dir))
			require.NoError(t, os.WriteFile(dir, []byte("not a dir"), 0o600))
		},
	}
	for name, breakDir := range breakers {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			require.NoError(t, os.Mkdir(dir, 0o700))
			s, err := handoff.Open(filepath.Join(dir, "handoff.json"), handoff.Limits{})
			require.NoError(t, err)
			require.NoError(t, s.Put("k", []byte("old")))
			breakDir(t, dir)

			require.Error(t, s.Put("k", []byte("new")))
			require.Error(t, s.Put("other", []byte("x")))
			require.Error(t, s.Delete("k"))

			got, err := s.Get("k")
			require.NoError(t, err)
			assert.Equal(t, []byte("old"), got)
			assert.Equal(t, []string{"k"}, s.Keys())
		})
	}
}

func TestConcurrentWriters(t *testing.T) {
	s, path := openTemp(t, handoff.Limits{})
	const writers, puts = 16, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range puts {
				key := fmt.Sprintf("w%02d-%02d", w, i)
				assert.NoError(t, s.Put(key, []byte(key)))
				_, _ = s.Get(key) // exercise readers alongside writers
				_ = s.Keys()
			}
		}()
	}
	wg.Wait()

	reopened, err := handoff.Open(path, handoff.Limits{})
	require.NoError(t, err)
	all := reopened.List()
	require.Len(t, all, writers*puts)
	for k, v := range all {
		assert.Equal(t, k, string(v))
	}
	assert.Equal(t, []string{"handoff.json"}, dirNames(t, filepath.Dir(path)), "no temp files left")
}

func TestOpenCorruptFile(t *testing.T) {
	tests := map[string]string{
		"truncated":     `{"version":1,"entries":{"k":"aGVs`,
		"empty":         ``,
		"not base64":    `{"version":1,"entries":{"k":"!!!"}}`,
		"wrong version": `{"version":2,"entries":{}}`,
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "handoff.json")
			require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
			_, err := handoff.Open(path, handoff.Limits{})
			require.ErrorIs(t, err, handoff.ErrCorrupt)
			assert.Contains(t, err.Error(), path)
			assert.Contains(t, err.Error(), "move the file aside")
		})
	}
}

func TestOpenUnreadablePath(t *testing.T) {
	dir := t.TempDir() // a directory where the file should be
	_, err := handoff.Open(dir, handoff.Limits{})
	require.Error(t, err)
	assert.NotErrorIs(t, err, handoff.ErrCorrupt)
}

func TestStrayTempFilesRemoved(t *testing.T) {
	s, path := openTemp(t, handoff.Limits{})
	require.NoError(t, s.Put("k", []byte("committed")))
	dir := filepath.Dir(path)
	assert.Equal(t, []string{"handoff.json"}, dirNames(t, dir), "no temp files after a write")

	// Simulate a crash between the temp write and the rename: a half-written
	// temp file sits next to the last committed store.
	stray := filepath.Join(dir, ".handoff.json.tmp-123456")
	require.NoError(t, os.WriteFile(stray, []byte(`{"version":1,"entries":{"k":"aGFs`), 0o600))

	reopened, err := handoff.Open(path, handoff.Limits{})
	require.NoError(t, err)
	got, err := reopened.Get("k")
	require.NoError(t, err)
	assert.Equal(t, []byte("committed"), got)

	require.NoError(t, reopened.Put("k2", []byte("v")))
	assert.Equal(t, []string{"handoff.json"}, dirNames(t, dir), "Open removed the stray temp file")
}

func TestStrayTempFileWithoutStore(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".handoff.json.tmp-1"), []byte("{"), 0o600))
	s, err := handoff.Open(filepath.Join(dir, "handoff.json"), handoff.Limits{})
	require.NoError(t, err)
	assert.Empty(t, s.List(), "a crash before the first rename means an empty store")
}
