package safefile_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/beamdeploy/beamdeploy/internal/safefile"
)

// writerEnv makes the test binary a process that rewrites one file in a
// loop until it is killed (see TestMain).
const writerEnv = "SAFEFILE_TEST_WRITER"

func TestMain(m *testing.M) {
	if path := os.Getenv(writerEnv); path != "" {
		for i := 0; ; i++ {
			if err := safefile.Write(path, document(i), 0o600); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
	}
	os.Exit(m.Run())
}

// document is a 256 KiB body followed by its own checksum, so that a
// reader can tell a whole document from a torn one.
func document(i int) []byte {
	body := bytes.Repeat([]byte(fmt.Sprintf("generation %d\n", i)), 256<<10/16)
	sum := sha256.Sum256(body)
	return append(body, "sha256 "+hex.EncodeToString(sum[:])+"\n"...)
}

func whole(b []byte) bool {
	i := bytes.LastIndex(b, []byte("sha256 "))
	if i < 0 {
		return false
	}
	sum := sha256.Sum256(b[:i])
	return strings.TrimSpace(string(b[i+len("sha256 "):])) == hex.EncodeToString(sum[:])
}

// F9: a process SIGKILLed at any point of Write (between the write and the
// rename included) leaves the previous document or the new one, whole.
func TestKilledWriterNeverLeavesATornFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	require.NoError(t, safefile.Write(path, document(-1), 0o600))
	for round := range 40 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), writerEnv+"="+path)
		require.NoError(t, cmd.Start())
		time.Sleep(time.Duration(1+round%13) * time.Millisecond)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait() // killed: the error is expected
		b, err := os.ReadFile(path)
		require.NoError(t, err, "round %d", round)
		require.True(t, whole(b), "round %d: torn file of %d bytes", round, len(b))
	}
	left, err := filepath.Glob(filepath.Join(dir, ".state.json.tmp-*"))
	require.NoError(t, err)
	t.Logf("40 kills: the file was whole every time; %d temp files left by killed writers", len(left))
	require.NoError(t, safefile.RemoveTemps(path))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "RemoveTemps leaves only the file")
}
