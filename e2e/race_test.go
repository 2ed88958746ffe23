//go:build race

package e2e_test

// raceEnabled: under `go test -race`, the remit binary is built with -race
// too, so the end-to-end tests also look for data races in the servers.
const raceEnabled = true
