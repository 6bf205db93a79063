package config

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
)

// RunAs is who an app's instances run as, as systemd unit settings.
type RunAs struct {
	// User is the instances' User=; empty runs them as root.
	User string
	// Dynamic makes systemd allocate User while an instance runs
	// (DynamicUser=yes). Both colours name the same user, so they run as
	// the same uid and each can read what the other wrote.
	Dynamic bool
	// StateDirectory is the instances' StateDirectory=, relative to
	// /var/lib: a directory systemd creates and hands to User, for what
	// the app writes; the app finds it in $STATE_DIRECTORY. Empty: none.
	StateDirectory string
}

// Root reports whether the instances run as root, by name.
func (r RunAs) Root() bool { return r.User == "" || r.User == "root" }

// RunAs decides who c's instances run as:
//
//   - DynamicUser: a user systemd allocates for the app while it runs,
//     named DynamicUserName(c.App), with the StateDirectory DataDir(c.App);
//   - empty (configs written before dynamic users) or "root": root;
//   - anything else: that existing user, as configured.
func (c Config) RunAs() RunAs {
	switch c.User {
	case DynamicUser:
		return RunAs{User: DynamicUserName(c.App), Dynamic: true, StateDirectory: DataDir(c.App)}
	case "", "root":
		return RunAs{}
	}
	return RunAs{User: c.User}
}

// DataDir is the StateDirectory= of app's dynamic-user instances, relative
// to /var/lib: /var/lib/beamdeploy/APP/data, next to the app's releases.
// systemd keeps the directory itself under /var/lib/private (mode 0700,
// so that no other user reaches files left by a uid it may reuse) and
// links it from there.
func DataDir(app string) string { return "beamdeploy/" + app + "/data" }

// Dynamic user names: systemd accepts at most 31 characters of [a-zA-Z0-9_-]
// not starting with a digit or '-' for a dynamic user.
const (
	dynamicPrefix = "bd-" // an app name that fits: bd-APP
	hashedPrefix  = "bd_" // any other app name: bd_PREFIX_HASH
	maxUserName   = 31
	hashedKeep    = 16 // characters of the app name kept in a hashed name
	hashedHex     = 10 // hex digits of the app name's sha256 in a hashed name
)

var userNameChars = regexp.MustCompile(`^[a-z0-9_-]+$`)

// DynamicUserName is the user name app's instances run under when they
// run as a dynamic user: "bd-" and the app name when that is a valid user
// name of at most 31 characters, else "bd_", up to 16 characters of the
// app name ('.' as '_'), '_' and 10 hex digits of the name's sha256. No two
// app names get the same user. If a static user of that name exists,
// systemd runs the instances as that user instead of allocating one.
func DynamicUserName(app string) string {
	if n := dynamicPrefix + app; len(n) <= maxUserName && userNameChars.MatchString(app) {
		return n
	}
	sum := sha256.Sum256([]byte(app))
	keep := strings.ReplaceAll(app, ".", "_")
	if len(keep) > hashedKeep {
		keep = keep[:hashedKeep]
	}
	return hashedPrefix + keep + "_" + hex.EncodeToString(sum[:])[:hashedHex]
}

// DynamicUIDMin and DynamicUIDMax bound the uids systemd allocates dynamic
// users from: a user named DynamicUserName(app) with a uid outside them is
// a static user, which systemd would run the instances as.
const (
	DynamicUIDMin = 61184
	DynamicUIDMax = 65519
)
