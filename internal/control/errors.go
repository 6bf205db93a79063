package control

import (
	"errors"
	"net/http"

	"github.com/beamdeploy/beamdeploy/internal/handoff"
	"github.com/beamdeploy/beamdeploy/internal/release"
	"github.com/beamdeploy/beamdeploy/internal/swap"
)

// Exit codes of the beamdeploy command for the failures in the table
// below; the CLI adds its own (usage 2, interrupted 130). Documented in
// the README and in `beamdeploy --help`.
const (
	ExitOK             = 0
	ExitFailure        = 1
	ExitRolledBack     = 3
	ExitNotRunning     = 4
	ExitSwapInProgress = 5
	ExitReleaseInUse   = 6
	ExitLocked         = 7
)

// Error codes on the wire. Each has one row in failures.
const (
	CodeSwapInProgress   = "swap_in_progress"
	CodeShuttingDown     = "shutting_down"
	CodeHotUnsupported   = "hot_unsupported"
	CodeLocked           = "locked"
	CodeReleaseNotFound  = "release_not_found"
	CodeReleaseInUse     = "release_in_use"
	CodeChecksumMismatch = "checksum_mismatch"
	CodeReleaseExists    = "release_exists"
	CodeLimit            = "limit"
	CodeReleaseCorrupt   = "release_corrupt"
	CodeNoSpace          = "no_space"
	CodeInvalidRelease   = "invalid_release"
	CodeRolledBack       = "rolled_back"
	CodeNotFound         = "not_found"
	CodeBadRequest       = "bad_request"
	CodePermissionDenied = "permission_denied"
	CodeBusy             = "busy"
	CodeInternal         = "internal"
)

// Sentinels a client matches with errors.Is on an *Error (and on
// ErrNotRunning, which the client makes itself). The parent wraps the
// ones that have no home elsewhere (ErrHotUnsupported, ErrLocked) too.
var (
	// ErrNotRunning means the parent's control socket does not answer.
	ErrNotRunning = errors.New("control: parent not running")
	// ErrHotUnsupported means a hot upgrade was refused before the
	// running process was touched.
	ErrHotUnsupported = errors.New("hot upgrade not possible")
	// ErrLocked means a swap was refused because the app is locked.
	ErrLocked = errors.New("control: app locked")
	// ErrReleaseNotFound means the requested release is not staged.
	ErrReleaseNotFound = errors.New("control: release not found")
	// ErrReleaseInUse means a forced stage would have replaced a release
	// that is in use: serving, draining or the target of a running swap.
	ErrReleaseInUse = errors.New("control: release in use")
	// ErrChecksumMismatch means the upload's sha256 is not the one given.
	ErrChecksumMismatch = errors.New("control: checksum mismatch")
	// ErrReleaseExists means the version is staged with other content.
	ErrReleaseExists = errors.New("control: release exists with different content")
	// ErrLimit means a release or a handoff write exceeded a limit.
	ErrLimit = errors.New("control: limit exceeded")
	// ErrReleaseCorrupt means a staged release's metadata is damaged.
	ErrReleaseCorrupt = errors.New("control: corrupt release")
	// ErrNoSpace means the host lacks the disk space to stage.
	ErrNoSpace = errors.New("control: not enough disk space")
	// ErrInvalidRelease means the release was refused (name, content).
	ErrInvalidRelease = errors.New("control: invalid release")
	// ErrNotFound means a handoff key (or a followed swap) does not exist.
	ErrNotFound = errors.New("control: not found")
	// ErrBadRequest means the request itself was malformed.
	ErrBadRequest = errors.New("control: bad request")
	// ErrPermissionDenied matches a CodePermissionDenied error.
	ErrPermissionDenied = errors.New("control: permission denied")
	// ErrBusy means the parent turned the connection away (too many
	// connections of this user, or not identified in time): retry later.
	ErrBusy = errors.New("control: parent busy")
)

// failure is one row of the error table: the parent's sentinels (from)
// become code and HTTP status on the wire; a client matches code with
// errors.Is(err, is), and the CLI exits with exit.
type failure struct {
	code   string
	status int
	exit   int
	is     error
	from   []error
}

// failures is the one table from sentinel to wire code to exit code. The
// parent takes the first row whose from matches, so a row comes before
// the rows of errors it may wrap.
var failures = []failure{
	{CodeHotUnsupported, http.StatusUnprocessableEntity, ExitFailure, ErrHotUnsupported, []error{ErrHotUnsupported, swap.ErrNoActive}},
	{CodeSwapInProgress, http.StatusConflict, ExitSwapInProgress, swap.ErrSwapInProgress, []error{swap.ErrSwapInProgress}},
	{CodeShuttingDown, http.StatusServiceUnavailable, ExitFailure, swap.ErrShuttingDown, []error{swap.ErrShuttingDown}},
	{CodeLocked, http.StatusLocked, ExitLocked, ErrLocked, []error{ErrLocked}},
	{CodeReleaseNotFound, http.StatusNotFound, ExitFailure, ErrReleaseNotFound, []error{release.ErrNotFound}},
	{CodeReleaseInUse, http.StatusConflict, ExitReleaseInUse, ErrReleaseInUse, []error{release.ErrInUse}},
	{CodeChecksumMismatch, http.StatusUnprocessableEntity, ExitFailure, ErrChecksumMismatch, []error{release.ErrChecksumMismatch}},
	{CodeReleaseExists, http.StatusConflict, ExitFailure, ErrReleaseExists, []error{release.ErrExists}},
	{CodeLimit, http.StatusRequestEntityTooLarge, ExitFailure, ErrLimit, []error{release.ErrLimit, handoff.ErrLimit}},
	{CodeReleaseCorrupt, http.StatusInternalServerError, ExitFailure, ErrReleaseCorrupt, []error{release.ErrCorrupt}},
	{CodeNoSpace, http.StatusInsufficientStorage, ExitFailure, ErrNoSpace, []error{release.ErrNoSpace}},
	{CodeInvalidRelease, http.StatusUnprocessableEntity, ExitFailure, ErrInvalidRelease, []error{release.ErrInvalidRelease}},
	{CodeRolledBack, http.StatusUnprocessableEntity, ExitRolledBack, swap.ErrRolledBack, []error{swap.ErrRolledBack}},
	{CodeNotFound, http.StatusNotFound, ExitFailure, ErrNotFound, []error{handoff.ErrNotFound}},
	{CodeBadRequest, http.StatusBadRequest, ExitFailure, ErrBadRequest, []error{handoff.ErrInvalidKey}},
	{CodePermissionDenied, http.StatusForbidden, ExitFailure, ErrPermissionDenied, nil},
	{CodeBusy, http.StatusServiceUnavailable, ExitFailure, ErrBusy, nil},
	{CodeInternal, http.StatusInternalServerError, ExitFailure, nil, nil},
}

// internalFailure is the row for errors no other row claims.
var internalFailure = failures[len(failures)-1]

// CodeOf returns the wire code and HTTP status for err, as the parent
// reports it: CodeInternal for errors the table does not name.
func CodeOf(err error) (code string, status int) {
	for _, f := range failures {
		for _, s := range f.from {
			if errors.Is(err, s) {
				return f.code, f.status
			}
		}
	}
	return internalFailure.code, internalFailure.status
}

// ErrorOf is the error body the parent sends for err.
func ErrorOf(err error) *Error {
	code, _ := CodeOf(err)
	return &Error{MessageType: TypeError, Code: code, Message: err.Error()}
}

// Is maps the wire code to the sentinel callers branch on.
func (e *Error) Is(target error) bool {
	for _, f := range failures {
		if f.code == e.Code {
			return f.is != nil && target == f.is
		}
	}
	return false
}

// ExitCode is the beamdeploy command's exit code for err, a failure the
// parent reported (or ErrNotRunning): ExitFailure for any other error.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	if errors.Is(err, ErrNotRunning) {
		return ExitNotRunning
	}
	for _, f := range failures {
		if f.is != nil && errors.Is(err, f.is) {
			return f.exit
		}
	}
	return ExitFailure
}
