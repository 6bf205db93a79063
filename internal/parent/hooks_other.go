//go:build !linux

package parent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"

	"github.com/beamdeploy/beamdeploy/internal/swap"
)

// runGroup needs Linux process groups and waitid.
func runGroup(context.Context, *exec.Cmd, *hookCred, io.Writer) error {
	return fmt.Errorf("run hooks: %w", errors.ErrUnsupported)
}

// instanceCredential needs pidfds and /proc.
func instanceCredential(context.Context, unitLookup, swap.Instance) (*hookCred, error) {
	return nil, fmt.Errorf("read an instance's credentials: %w", errors.ErrUnsupported)
}
