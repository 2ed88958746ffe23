package main

import "golang.org/x/sys/unix"

// ioctls that read and write a terminal's attributes.
const (
	ioctlGetTermios = unix.TCGETS
	ioctlSetTermios = unix.TCSETS
)
