// Package devnet lays out and runs a local Remit network: the dev-network
// logic behind `remit init` and `remit up`, kept out of package main so that
// it can be tested on its own.
//
//   - [Init] writes a complete network into a directory ([Layout]): the
//     gateway's and the banks' configs, the users file, the demo passwords
//     (credentials.json), the dev CA and every certificate, and the data
//     directories.
//   - [Up] runs the network that [Init] wrote: each role as a child process
//     of the running binary (`remit gateway`, `remit bank`), every log line
//     prefixed with its process's name; it waits until every process answers
//     its health check and every bank is registered with the gateway, prints
//     a banner of endpoints and examples, and stops the children gracefully
//     on SIGINT or SIGTERM.
//
// The flags, the exit statuses and the wording of usage errors stay in
// cmd/remit; this package returns plain errors.
//
// # Invariants
//
// A newcomer must not break these:
//
//   - Init writes gateway.yaml last, and a failed Init removes everything it
//     wrote. gateway.yaml therefore marks a complete network: Up runs a
//     directory that has one, initialises an empty one, and refuses
//     anything else rather than write over someone's files.
//   - Every path of a network is derived by [Layout], so that Init and Up
//     cannot disagree about where a file is.
//   - No child outlives Up. On Linux the kernel kills a child when the OS
//     thread that started it exits (Pdeathsig), so Up starts every child
//     from a goroutine locked to its thread for as long as the children
//     run; elsewhere Up stops them on SIGINT and SIGTERM only.
//   - Up prints [ReadyLine] only when every process is healthy and the
//     gateway reports every bank serving: scripts and the e2e tests wait for
//     that line before they pay.
package devnet
