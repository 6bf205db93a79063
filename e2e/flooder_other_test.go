//go:build !linux

package e2e_test

import (
	"fmt"
	"os"
)

// floodMain needs Linux (raw unix sockets).
func floodMain() int {
	fmt.Fprintln(os.Stderr, "flooder: Linux only")
	return 2
}
