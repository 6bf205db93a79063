package contract

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beamdeploy/beamdeploy/internal/config"
)

func TestHotRecordFile(t *testing.T) {
	p := config.Paths{State: t.TempDir()}
	const unit = "hello@blue.service"
	_, ok, err := ReadHotRecord(p, "hello", unit)
	require.NoError(t, err)
	assert.False(t, ok, "no record: not hot-upgraded")

	rec := HotRecord{Unit: unit, Release: "1.2.0", Argv: []string{"/x/bin/hello"}, Dir: "/x", InvocationID: "abc"}
	require.NoError(t, WriteHotRecord(p, "hello", rec))
	got, ok, err := ReadHotRecord(p, "hello", unit)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, rec, got)
	fi, err := os.Stat(HotRecordPath(p, "hello", unit))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm(), "the exec shim reads it as the app's user")

	require.NoError(t, os.WriteFile(HotRecordPath(p, "hello", unit), []byte(`{"unit":"x"}`), 0o644))
	_, _, err = ReadHotRecord(p, "hello", unit)
	require.ErrorContains(t, err, "malformed", "a record without a command")

	require.NoError(t, RemoveHotRecord(p, "hello", unit))
	require.NoError(t, RemoveHotRecord(p, "hello", unit), "removing what is gone is no error")
	_, ok, err = ReadHotRecord(p, "hello", unit)
	require.NoError(t, err)
	assert.False(t, ok)
	assert.Equal(t, filepath.Join(p.State, "hello", "hot", unit+".json"), HotRecordPath(p, "hello", unit))
}
