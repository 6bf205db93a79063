//go:build !linux

package beamdeploy

import (
	"errors"
	"fmt"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/control"
)

type successor struct{ pid int }

func startSuccessor(control.HotOrder) (*successor, error) {
	return nil, fmt.Errorf("%w: %w", errSuccessor, errors.ErrUnsupported)
}

func (*successor) stop(func(), time.Duration) {}
