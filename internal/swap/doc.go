// Package swap is the deploy core of an app, as pure logic: the
// blue-green swap state machine and every decision about what runs.
//
// A swap starts the idle colour with the target release, waits until it is
// ready, runs the before-cutover hook, then stops the old colour (which
// drains) and runs the after-cutover hook. Any failure before the old
// colour is stopped stops the new one and keeps the old: the swap is rolled
// back and the error matches ErrRolledBack. Only one swap runs at a time;
// a second one is refused at once with ErrSwapInProgress. Status never
// blocks, not even during a swap.
//
// Besides swaps, the Machine decides: what a reload or a rollback swaps to
// (ReloadTarget, RollbackTarget, from its Record of deployed releases),
// what retention removes (Prune), which instance replaces which (Status.Peers),
// when a swap is over for an instance waiting for the cutover (WaitIdle),
// and, after a parent restart, which running instance serves and which
// are stopped (Restore, through Converge and Adopt). The decisions themselves are pure functions over data (Record's
// methods, Converge, Status.Peers), table-tested without a Machine.
//
// # One owner for every change to an app
//
// The Machine is the one owner of an app's deploy state: the active,
// incoming and draining instances, the running swap and its intent record,
// the Record (deployed releases and history) and the pins on the releases
// in use. Every change goes through its methods: Swap (upgrade, reload,
// rollback, swap to a staged release), HotUpgrade, Prune (retention),
// Restore (a restart: swaps asked for meanwhile wait for it). It is guarded by one lock, Machine.mu, held only for
// in-memory changes and never across a call to the Runtime, the release
// store or Save: the operations that take seconds (starting, draining,
// staging an upload) run outside it, and a swap claims the machine for its
// whole length by its phase (begin), which refuses a second one. (pinMu
// only keeps two re-pinnings of the active release in order.)
//
// Why one lock and not one goroutine taking requests (as tableflip's
// upgrader does): status is read at high rates (every CLI call, every
// instance asking for its peers, a flood of local connections) and must
// never wait, neither for a swap nor for a queue of requests ahead of it;
// a mutex held for a copy answers it in microseconds, and the phase already
// serialises swaps. A goroutine would add a round trip per read and a
// second place where the swap's state lives.
//
// The release files have a leaf lock of their own, the store's (see
// internal/release, pin.go): it covers one rename and the check of the
// pins in the same step, and is never held together with Machine.mu. The
// Machine pins what it
// uses: a swap's target from the moment it is chosen to the swap's end,
// the active release for as long as it is active (so the draining one
// stays pinned until its swap ends). A `stage --force` and Prune's
// removals are refused by the store for a pinned release, in the same step
// as the rename they would make: neither a decision the Machine made from
// a snapshot (Prune) nor a forced stage racing a swap can remove or
// replace what a swap runs.
//
// The package does not know about systemd: it drives a Runtime, which the
// parent implements over units, and tests implement with fakes; it reaches
// the release store through Releases and persistence through Options.Save.
package swap
