// Package e2e holds the end-to-end tests: the real beamdeploy binary and
// examples/hello against a real systemd (run them with `make
// test-systemd`, which boots one in a sandbox).
//
// Each test has its own app (name, port, units, state), so most run in
// parallel (`make test-systemd` passes -parallel 3). Those that stress the
// whole systemd (the daemon-reload storm) or assert tight timings (status
// within a second during a swap, an instance not back within 1.5 s) run
// alone, before the parallel ones.
package e2e
