package config

import (
	"fmt"
	"strings"
)

// SplitCommand splits a command line into words the way a POSIX shell
// would for simple input: whitespace separates words, single quotes keep
// everything literally, double quotes keep everything but backslash
// escapes, and a backslash outside quotes escapes the next character. No
// expansion of any kind happens.
func SplitCommand(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words, inWord = append(words, cur.String()), false
				cur.Reset()
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("%w: unterminated single quote in %q", ErrInvalid, s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i, inWord = i+1+j, true
		case c == '"':
			n, err := doubleQuoted(s[i+1:], &cur)
			if err != nil {
				return nil, fmt.Errorf("%w: %s in %q", ErrInvalid, err, s)
			}
			i, inWord = i+1+n, true
		case c == '\\' && i+1 < len(s):
			cur.WriteByte(s[i+1])
			i, inWord = i+1, true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// doubleQuoted copies s up to the closing quote into b and returns the
// index of that quote.
func doubleQuoted(s string, b *strings.Builder) (int, error) {
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '"':
			return i, nil
		case s[i] == '\\' && i+1 < len(s) && strings.IndexByte(`"\$`+"`", s[i+1]) >= 0:
			b.WriteByte(s[i+1])
			i++
		default:
			b.WriteByte(s[i])
		}
	}
	return 0, fmt.Errorf("unterminated double quote")
}
