//go:build !linux

package parent

// processAlive is not known off Linux: nothing waits on it.
func processAlive(int) bool { return false }

// watchedProcess is not available off Linux: watchProcess returns nil.
type watchedProcess struct{}

func watchProcess(int) *watchedProcess { return nil }

func (*watchedProcess) exited() bool { return true }

func (*watchedProcess) close() {}
