package devnet

import "syscall"

// childSysProcAttr makes the kernel SIGKILL a child of `remit up` when up
// dies, however it dies (kill -9 included), so no gateway or bank outlives
// it. Children stay in up's process group: Ctrl-C in a terminal and
// `kill -- -PGID` reach them too.
//
// Pdeathsig fires when the OS thread that started the child exits, not the
// process; up starts its children from a goroutine locked to its thread
// ([Up]) so that thread lives as long as up does.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
