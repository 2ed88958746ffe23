//go:build !linux

package devnet

import "syscall"

// childSysProcAttr: only Linux can have the kernel kill the children when
// up dies (Pdeathsig). Elsewhere, up stops them on Ctrl-C and SIGTERM, but a
// kill -9 of up alone leaves them running: kill the process group instead.
func childSysProcAttr() *syscall.SysProcAttr { return nil }
