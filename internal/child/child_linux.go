package child

import "syscall"

// orphanSignal asks Linux to send SIGTERM to the child when its parent
// dies (prctl PR_SET_PDEATHSIG, set between fork and exec).
func orphanSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGTERM }
