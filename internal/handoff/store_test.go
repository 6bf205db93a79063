package handoff_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/beamdeploy/beamdeploy/internal/handoff"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// openTemp opens a store at handoff.json in a fresh temp dir.
func openTemp(t *testing.T, limits handoff.Limits) (*handoff.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "handoff.json")
	s, err := handoff.Open(path, limits)
	require.NoError(t, err)
	return s, path
}

// dirNames lists the names in dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestRoundTrip(t *testing.T) {
	s, _ := openTemp(t, handoff.Limits{})
	assert.Empty(t, s.Keys())
	require.NoError(t, s.Put("b", []byte("two")))
	require.NoError(t, s.Put("a", []byte("one")))
	require.NoError(t, s.Put("empty", nil))

	got, err := s.Get("a")
	require.NoError(t, err)
	assert.Equal(t, []byte("one"), got)
	assert.Equal(t, []string{"a", "b", "empty"}, s.Keys())
	assert.Equal(t, map[string][]byte{"a": []byte("one"), "b": []byte("two"), "empty": {}}, s.List())

	require.NoError(t, s.Put("a", []byte("uno")))
	got, err = s.Get("a")
	require.NoError(t, err)
	assert.Equal(t, []byte("uno"), got)

	require.NoError(t, s.Delete("a"))
	_, err = s.Get("a")
	require.ErrorIs(t, err, handoff.ErrNotFound)
	require.ErrorIs(t, s.Delete("a"), handoff.ErrNotFound)
	assert.Equal(t, []string{"b", "empty"}, s.Keys())
}

func TestReturnedValuesAreCopies(t *testing.T) {
	s, _ := openTemp(t, handoff.Limits{})
	in := []byte("abc")
	require.NoError(t, s.Put("k", in))
	in[0] = 'X'
	got, err := s.Get("k")
	require.NoError(t, err)
	got[1] = 'Y'
	list := s.List()
	list["k"][2] = 'Z'
	list["new"] = []byte("x")
	again, err := s.Get("k")
	require.NoError(t, err)
	assert.Equal(t, []byte("abc"), again)
	assert.Equal(t, []string{"k"}, s.Keys())
}

func TestSurvivesReopen(t *testing.T) {
	s, path := openTemp(t, handoff.Limits{})
	require.NoError(t, s.Put("session", []byte{0, 1, 2, 255}))
	require.NoError(t, s.Put("gone", []byte("x")))
	require.NoError(t, s.Delete("gone"))

	s2, err := handoff.Open(path, handoff.Limits{})
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"session": {0, 1, 2, 255}}, s2.List())
}

func TestFileFormat(t *testing.T) {
	s, path := openTemp(t, handoff.Limits{})
	require.NoError(t, s.Put("k", []byte("hello")))

	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(data, &doc))
	assert.Equal(t, map[string]any{
		"version": float64(1),
		"entries": map[string]any{"k": "aGVsbG8="},
	}, doc)
}

func TestOpenMissingFileIsEmpty(t *testing.T) {
	s, path := openTemp(t, handoff.Limits{})
	assert.Empty(t, s.List())
	assert.NoFileExists(t, path, "Open must not create the file")
}
