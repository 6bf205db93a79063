//go:build !linux

package parent

// watchedProcess is not available off Linux: watchProcess returns nil.
type watchedProcess struct{}

func watchProcess(int) *watchedProcess { return nil }

func (*watchedProcess) exited() bool { return true }

func (*watchedProcess) close() {}
