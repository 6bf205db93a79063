package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxFrame bounds one message of a progress stream (one line of NDJSON).
// The largest legitimate one, an error with the journal lines of a failed
// unit (20 lines of at most 2 KiB), stays far below.
const MaxFrame = 4 << 20

var errNoFinal = errors.New("the parent closed the stream without a result")

// ReadStream reads a progress stream: newline-delimited JSON messages,
// each with a message_type, ending with one of type final (handed to
// decode) or an error (returned as *Error). Progress messages go to
// onProgress; unknown types are skipped. A message longer than MaxFrame, a
// message that is not a JSON object, or the end of r before the final
// message is an error.
func ReadStream(r io.Reader, final string, onProgress func(Progress), decode func([]byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxFrame)
	for sc.Scan() {
		var head struct {
			MessageType string `json:"message_type"`
		}
		line := sc.Bytes()
		if err := json.Unmarshal(line, &head); err != nil {
			return fmt.Errorf("decode message from parent: %w", err)
		}
		switch head.MessageType {
		case TypeProgress:
			var p Progress
			if err := json.Unmarshal(line, &p); err == nil && onProgress != nil {
				onProgress(p)
			}
		case final:
			return decode(line)
		case TypeError:
			var e Error
			if err := decodeFinal(line, &e); err != nil {
				return err
			}
			return &e
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("read progress from parent: message longer than %d bytes", MaxFrame)
		}
		return fmt.Errorf("read progress from parent: %w", err)
	}
	return errNoFinal
}
