// Command remit is Remit's single binary: it sets up and runs a local
// payment network (init, up), runs one role of a real deployment (gateway,
// bank), manages its certificates and users (certs, users), and is the
// client people use at a terminal (login, pay, balance, payments, outbox,
// admin), a thin layer over the Go SDK in package client and its durable
// offline outbox in client/outbox.
//
// Run `remit --help` for the commands and `remit <command> --help` for each
// command's flags and examples.
//
// Every command lives in its own file and is listed in [commands]; main only
// turns the result of [run] into an exit status: 0 for success, 1 for a
// failure (a declined payment included), 2 for a usage error, and 3 for a
// payment left queued in the outbox without a final outcome yet.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// commands lists the subcommands in the order `remit --help` shows them.
// A new command is a new file defining a *command, plus a line here.
func commands() []*command {
	return []*command{
		initCmd,
		upCmd,
		benchCmd,
		chaosCmd,
		gatewayCmd,
		bankCmd,
		certsCmd,
		usersCmd,
		registerCmd,
		loginCmd,
		logoutCmd,
		whoamiCmd,
		passwdCmd,
		payCmd,
		balanceCmd,
		paymentsCmd,
		outboxCmd,
		adminCmd,
		versionCmd,
	}
}
