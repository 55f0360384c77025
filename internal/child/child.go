// Package child holds how dotkv's supervising commands (dev and the
// bench) start the servers they own: in a process group of their own, so
// that a terminal's Ctrl-C reaches the supervisor alone and it stops them
// in order, and, where the kernel offers it, with a signal that stops them
// should the supervisor die without doing so (kill -9).
package child

import "syscall"

// Attr returns the process attributes for a server started by a
// supervisor: its own process group and, on Linux, SIGTERM when the
// supervisor dies (a server stops cleanly on SIGTERM).
//
// Linux sends that signal when the thread that started the child exits,
// not the process; Go keeps its threads for the life of the process
// unless a goroutine that locked one exits, which the supervisors do not do.
func Attr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	orphanSignal(a)
	return a
}
