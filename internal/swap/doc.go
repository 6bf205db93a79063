// Package swap is the blue-green swap state machine, as pure logic.
//
// A swap starts the idle colour with the target release, waits until it is
// ready, runs the before-cutover hook, then stops the old colour (which
// drains) and runs the after-cutover hook. Any failure before the old
// colour is stopped stops the new one and keeps the old: the swap is rolled
// back and the error matches ErrRolledBack. Only one swap runs at a time;
// a second one is refused at once with ErrSwapInProgress. Status never
// blocks, not even during a swap.
//
// The package does not know about systemd: it drives a Runtime, which the
// parent implements over units, and tests implement with fakes.
package swap
