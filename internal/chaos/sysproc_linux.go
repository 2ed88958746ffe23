//go:build linux

package chaos

import (
	"fmt"
	"syscall"
)

// childSysProcAttr kills the network with the harness: a harness killed
// mid-run leaves no server behind holding its ports.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// mountSmallDisk mounts a tmpfs of diskSize on dir and returns "", or why
// it could not (not root, no permission): the disk-full fault is then
// reported as skipped, never faked.
func mountSmallDisk(dir string) string {
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+diskSize+",mode=0700"); err != nil {
		return fmt.Sprintf("cannot mount a tmpfs on %s: %v", dir, err)
	}
	return ""
}

func unmount(dir string) error { return syscall.Unmount(dir, 0) }
