//go:build !linux

package storetest

import "syscall"

// procAttr has no parent-death signal outside Linux: Stop ends the servers.
func procAttr() *syscall.SysProcAttr { return nil }
