package parent

import (
	"time"

	"github.com/beamdeploy/beamdeploy/internal/swap"
)

func swapStatusFixture() swap.Status {
	return swap.Status{
		Active: &swap.Instance{Unit: "hello@green.service", Release: "1.1.0", PID: 42},
		Last:   &swap.Result{OK: true, Total: 420 * time.Millisecond},
	}
}
