//go:build !linux

package release

import (
	"errors"
	"fmt"
	"os"
)

func freeSpace(dir string) (int64, error) {
	return 0, fmt.Errorf("statfs %s: %w", dir, errors.ErrUnsupported)
}

// isNoSpace is false: only Linux maps a full disk to ErrNoSpace during
// extraction.
func isNoSpace(error) bool { return false }

func renameNoReplace(from, to string) error { return renameIfAbsent(from, to) }

func renameExchange(a, b string) error {
	return &os.LinkError{Op: "exchange", Old: a, New: b, Err: errors.ErrUnsupported}
}
