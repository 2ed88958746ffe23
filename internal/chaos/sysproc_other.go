//go:build !linux

package chaos

import "syscall"

func childSysProcAttr() *syscall.SysProcAttr { return nil }

func mountSmallDisk(string) string { return "a small tmpfs needs Linux" }

func unmount(string) error { return nil }
