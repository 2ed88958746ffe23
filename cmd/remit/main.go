// Command remit is Remit's single binary: it sets up and runs a local
// payment network (init, up), runs one role of a real deployment (gateway,
// bank), and manages its certificates and users (certs, users).
//
// Run `remit --help` for the commands and `remit <command> --help` for each
// command's flags and examples.
//
// Every command lives in its own file and is listed in [commands]; main only
// turns the result of [run] into an exit status: 0 for success, 1 for a
// failure, 2 for a usage error.
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
		gatewayCmd,
		bankCmd,
		certsCmd,
		usersCmd,
		versionCmd,
	}
}
