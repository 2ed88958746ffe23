// Package chaos is Remit's Jepsen-style bank test, behind `remit chaos`
// and e2e's TestChaos.
//
// It runs a real network (the gateway and three banks, child processes of
// the remit binary, each with its own data directory) with a fault proxy
// in every path (clients to gateway, gateway to each bank, each bank to
// the gateway), moves money around in it from many clients while a
// nemesis drawn from a seed kills, pauses, partitions, slows and starves
// its processes, then heals everything, lets every client resolve what it
// was not told (with the same transaction ids), waits for every
// transaction to resolve, stops the network and checks its databases:
// money conserved and nothing held, every payment applied exactly as
// decided, nothing in doubt, one outcome per transaction id, every outbox
// payment final. docs/reliability.md describes each fault and check.
package chaos
