package release

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestStageDiskFull fills a small tmpfs during extraction and checks that
// the error wraps ErrNoSpace and that nothing is left. It needs
// CAP_SYS_ADMIN to mount the tmpfs and is skipped without it.
func TestStageDiskFull(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	mnt := filepath.Join(sb.parent, "app")
	require.NoError(t, os.Mkdir(mnt, 0o755))
	// Just over MinFreeSpace, so the up-front check passes.
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=72m"); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { require.NoError(t, unix.Unmount(mnt, unix.MNT_DETACH)) })

	sb.store.Limits.MaxRatio = 1 << 20 // 100 MiB of zeros compresses too well otherwise
	_, err := sb.stage(t, "hello-1.0.tar.gz", bomb(t, 100), StageOptions{})
	require.ErrorIs(t, err, ErrNoSpace)
	require.ErrorContains(t, err, "no space left on device")
	sb.requireOnly(t)
}
