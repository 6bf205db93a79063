// Package e2e holds the end-to-end tests: the real beamdeploy binary and
// examples/hello against a real systemd (run them with `make
// test-systemd`, which boots one in a sandbox).
package e2e
