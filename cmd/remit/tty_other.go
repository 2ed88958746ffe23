//go:build !(linux || darwin || dragonfly || freebsd || netbsd || openbsd)

package main

import (
	"errors"
	"os"
)

func isTerminalFile(*os.File) bool { return false }

func readNoEcho(*os.File) (string, error) {
	return "", errors.New("cannot turn off echo on this system")
}
