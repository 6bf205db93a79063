package handoff

import (
	"fmt"
	"strconv"
)

// maxQuotedKey caps how much of a key error messages repeat.
const maxQuotedKey = 64

// checkKey reports whether key is 1..maxLen bytes of printable ASCII without
// space ('!' to '~'). Errors wrap [ErrInvalidKey], and also [ErrLimit] when
// the key is too long.
func checkKey(key string, maxLen int) error {
	const rule = "keys must be 1 to %d bytes of printable ASCII without spaces ('!' to '~')"
	if key == "" {
		return fmt.Errorf("%w: empty key: "+rule, ErrInvalidKey, maxLen)
	}
	if len(key) > maxLen {
		return fmt.Errorf("%w: %w: key of %d bytes is over the %d-byte limit",
			ErrInvalidKey, ErrLimit, len(key), maxLen)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < '!' || c > '~' {
			return fmt.Errorf("%w: byte %#02x at offset %d: "+rule, ErrInvalidKey, c, i, maxLen)
		}
	}
	return nil
}

// quoteKey quotes key for an error message, truncating long keys.
func quoteKey(key string) string {
	if len(key) > maxQuotedKey {
		return strconv.Quote(key[:maxQuotedKey]) + "..."
	}
	return strconv.Quote(key)
}
