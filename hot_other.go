//go:build !linux

package beamdeploy

import (
	"context"
	"errors"
	"fmt"

	"github.com/beamdeploy/beamdeploy/internal/control"
)

func startSuccessor(context.Context, control.HotOrder) (int, error) {
	return 0, fmt.Errorf("%w: %w", errSuccessor, errors.ErrUnsupported)
}

func killSuccessor(int) {}

func successorReady(int) error { return errors.ErrUnsupported }
