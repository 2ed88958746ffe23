// Package bench is `remit bench`: it measures how many payments per second
// a Remit network sustains over its real TLS API, how fast they are, and
// checks afterwards that the run lost, created or left held no money.
//
// [Run] starts its own network (the gateway and the banks as separate
// processes of the remit binary, in a temporary directory, through
// internal/devnet) or uses an existing one ([Config].Gateway). It logs
// every customer in through the Go SDK (package client), then for each
// concurrency level:
//
//  1. measures the health-check ceiling: the same client stack calling
//     grpc.health.v1 Check on the gateway as fast as the workers can, for a
//     short window; this is what the transport, TLS and the gateway's
//     server cost before any payment logic, on the same machine at the same
//     moment, so a payment rate can be read against it;
//  2. sends 1-unit payments between random customers (cross-bank unless
//     [Config].SameBankRatio says otherwise), each with a fresh transaction
//     id and no retry, for [Config].Duration, recording every latency in an
//     HDR histogram and every failure by decline reason or Connect code.
//
// Then it waits for every payment to be final and checks conservation: the
// sum of the customers' balances is what it was before, no funds are held,
// and no payment is PROCESSING ([Conservation]). Last, for its own network,
// it compares each process's goroutines and open fds after the run with
// their idle count before the first level ([Resources]): a leak fails the
// run as a lost unit of money does.
package bench
