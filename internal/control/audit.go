package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
	"unicode"
	"unicode/utf8"
)

// Locks: POST PathLock with a LockRequest body locks the app (locking it
// again replaces the message); DELETE PathLock unlocks it (an unlocked app
// is not an error). Both answer a LockState. While the app is locked every
// swap request (upgrade, hot upgrade, reload, swap, rollback) is refused
// with CodeLocked (HTTP 423) before anything is staged or started; stage
// is allowed.
const (
	PathLock = "/v1/lock"
	TypeLock = "lock"
	// TypeHistory is the message type of `beamdeploy --json history`.
	TypeHistory = "history"
)

// MaxMessage bounds a lock's or a swap's message, in bytes.
const MaxMessage = 1024

// Lock is an app's deploy lock: who took it, when and why.
type Lock struct {
	Message string    `json:"message"`
	User    string    `json:"user,omitempty"` // "" when the uid has no name
	UID     int       `json:"uid"`
	Since   time.Time `json:"since"`
}

// Who names the lock's owner: "alice (uid 1001)".
func (l Lock) Who() string { return Who(l.User, l.UID) }

// Who names a user by name and uid; by uid alone when it has no name.
func Who(user string, uid int) string {
	if user == "" {
		return fmt.Sprintf("uid %d", uid)
	}
	return fmt.Sprintf("%s (uid %d)", user, uid)
}

// LockRequest is the body of POST PathLock.
type LockRequest struct {
	Message string `json:"message"`
}

// LockState answers POST and DELETE PathLock.
type LockState struct {
	MessageType string `json:"message_type"` // TypeLock
	App         string `json:"app"`
	Lock        *Lock  `json:"lock"` // nil: unlocked
	// Swap is the id of a swap that was running when the lock was taken:
	// a lock refuses new swaps and does not stop that one.
	Swap string `json:"swap,omitempty"`
}

// CheckMessage refuses a message that would not read as one line of text:
// longer than MaxMessage bytes, not UTF-8, or with control characters.
func CheckMessage(m string) error {
	switch {
	case len(m) > MaxMessage:
		return fmt.Errorf("message is %d bytes long; at most %d", len(m), MaxMessage)
	case !utf8.ValidString(m):
		return errors.New("message is not valid UTF-8")
	}
	for _, r := range m {
		if unicode.IsControl(r) {
			return fmt.Errorf("message contains the control character %q; write it on one line", r)
		}
	}
	return nil
}

// Lock locks the app with message (see PathLock).
func (c *Client) Lock(ctx context.Context, message string) (LockState, error) {
	b, err := json.Marshal(LockRequest{Message: message})
	if err != nil {
		return LockState{}, fmt.Errorf("encode lock request: %w", err)
	}
	return c.lockCall(ctx, http.MethodPost, bytes.NewReader(b), "application/json")
}

// Unlock unlocks the app; unlocking an unlocked app is not an error.
func (c *Client) Unlock(ctx context.Context) (LockState, error) {
	return c.lockCall(ctx, http.MethodDelete, http.NoBody, "")
}

func (c *Client) lockCall(ctx context.Context, method string, body io.Reader, ctype string) (LockState, error) {
	resp, err := c.do(ctx, method, PathLock, nil, body, ctype)
	if err != nil {
		return LockState{}, err
	}
	defer resp.Body.Close()
	var st LockState
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return LockState{}, fmt.Errorf("decode %s: %w", PathLock, err)
	}
	return st, nil
}

// withMessage adds the swap's message (Client.Message) to q.
func withMessage(q url.Values, message string) url.Values {
	if message == "" {
		return q
	}
	if q == nil {
		q = url.Values{}
	}
	q.Set("message", message)
	return q
}
