//go:build !linux

package child

import "syscall"

// orphanSignal does nothing: only Linux has a parent-death signal; a
// server started here outlives a supervisor killed with SIGKILL.
func orphanSignal(*syscall.SysProcAttr) {}
