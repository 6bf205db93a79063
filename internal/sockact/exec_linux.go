package sockact

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/beamdeploy/beamdeploy/internal/contract"
)

// highFD is where descriptors are parked while they are rearranged.
const highFD = 100

// Place moves fds to 3, 4, ... (in order) without close-on-exec, as
// sd_listen_fds(3) expects. It fails rather than overwrite a descriptor in
// that range that is not one of fds.
func Place(fds []FD) ([]FD, error) {
	parked := make([]int, len(fds))
	for i, fd := range fds {
		p, err := unix.FcntlInt(uintptr(fd.Num), unix.F_DUPFD_CLOEXEC, highFD)
		if err != nil {
			closeAll(parked[:i])
			return nil, fmt.Errorf("park fd %d: %w", fd.Num, err)
		}
		parked[i] = p
	}
	closeAll(nums(fds))
	placed := make([]FD, len(fds))
	for i, p := range parked {
		target := contract.ListenFDsStart + i
		if _, err := unix.FcntlInt(uintptr(target), unix.F_GETFD, 0); !errors.Is(err, unix.EBADF) {
			closeAll(parked[i:])
			return nil, fmt.Errorf("place listener at fd %d: the descriptor is in use", target)
		}
		if err := unix.Dup3(p, target, 0); err != nil {
			closeAll(parked[i:])
			return nil, fmt.Errorf("place listener at fd %d: %w", target, err)
		}
		_ = unix.Close(p) // the copy at target remains
		placed[i] = FD{Num: target, Name: fds[i].Name}
	}
	return placed, nil
}

// Exec replaces this process with argv, handing it fds as sd_listen_fds(3)
// describes: fds are placed at 3, 4, ... and LISTEN_FDS, LISTEN_PID and
// LISTEN_FDNAMES are set in env (existing LISTEN_* entries are dropped).
// It returns only on failure.
func Exec(fds []FD, argv, env []string) error {
	if len(argv) == 0 {
		return errors.New("sockact: no command to exec")
	}
	placed, err := Place(fds)
	if err != nil {
		return err
	}
	names := make([]string, len(placed))
	for i, fd := range placed {
		names[i] = fd.Name
	}
	out := make([]string, 0, len(env)+3)
	for _, kv := range env {
		if !strings.HasPrefix(kv, "LISTEN_") {
			out = append(out, kv)
		}
	}
	out = append(out, contract.EnvListenFDs+"="+strconv.Itoa(len(placed)),
		contract.EnvListenPID+"="+strconv.Itoa(os.Getpid()),
		contract.EnvListenFDNames+"="+strings.Join(names, ":"))
	if err := unix.Exec(argv[0], argv, out); err != nil {
		return fmt.Errorf("exec %s: %w", argv[0], err)
	}
	return nil
}

func nums(fds []FD) []int {
	out := make([]int, len(fds))
	for i, fd := range fds {
		out[i] = fd.Num
	}
	return out
}
