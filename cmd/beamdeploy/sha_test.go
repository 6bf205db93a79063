package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSHA256File(t *testing.T) {
	dir := t.TempDir()
	tarball := filepath.Join(dir, "hello-1.0.0.tar.gz")
	got, err := sha256File(tarball)
	require.NoError(t, err)
	assert.Empty(t, got, "no checksum file: nothing to check")

	sum := "4f2b3c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70819"
	require.NoError(t, os.WriteFile(tarball+".sha256", []byte("0000  other.tar.gz\n"+sum+" *hello-1.0.0.tar.gz\n"), 0o644))
	got, err = sha256File(tarball)
	require.NoError(t, err)
	assert.Equal(t, sum, got)

	require.NoError(t, os.WriteFile(tarball+".sha256", []byte("0000  other.tar.gz\n"), 0o644))
	_, err = sha256File(tarball)
	require.ErrorContains(t, err, "no line for hello-1.0.0.tar.gz")
}
