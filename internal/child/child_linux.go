package child

import "syscall"

func orphanSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGTERM }
