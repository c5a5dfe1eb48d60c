package storetest

import "syscall"

// procAttr makes a rig's redis-server die with the test process, even when the test
// binary is killed before its cleanups run (a timeout, a panic): no orphan servers.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
