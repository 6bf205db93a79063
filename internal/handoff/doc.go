// Package handoff is the parent daemon's small key/value store through which
// an old app instance hands state to its successor during a blue-green swap:
// the old instance writes entries while it drains (put_handoff) and the new
// instance reads them after cutover (get_handoff, get_all_handoff).
//
// # Durability
//
// Every successful [Store.Put] and [Store.Delete] has rewritten the whole
// store to disk before it returns: the JSON file is written to a temp file in
// the same directory, fsynced, renamed over the old file and the directory is
// fsynced (see package safefile). A crash at any point leaves either the old
// file or the new one, never a mix, so a restarted daemon sees every change
// that was acknowledged. A write that fails leaves the in-memory store
// unchanged, so memory and disk never disagree.
//
// The file is JSON, mode 0600:
//
//	{"version":1,"entries":{"key":"base64 of the value"}}
package handoff
