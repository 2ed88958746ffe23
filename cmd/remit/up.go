package main

import (
	"context"
	"flag"
	"io"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/remitpay/remit/internal/devnet"
	"github.com/remitpay/remit/internal/logging"
)

var upCmd = &command{
	name:    "up",
	summary: "run a whole local network: the gateway and three banks, over TLS",
	usage:   "remit up [--dir DIR] [--base-port P] [--customers N] [--postgres URL [--replicas N]] [--timeout D]",
	help: `
Up runs a local Remit network: the gateway and the banks described in DIR,
each as a child process ('remit gateway --config DIR/gateway.yaml', 'remit
bank --config DIR/banks/<bank>.yaml'). When DIR is absent or empty it first
runs 'remit init --dir DIR --base-port P --customers N', which prints the
demo passwords.

It prefixes every line the children log with their name, waits until each
answers its health check over TLS and every bank is registered with the
gateway, then prints the endpoints and examples to try, and the line
"` + devnet.ReadyLine + `"

Ctrl-C or SIGTERM stops the children gracefully (SIGTERM, then SIGKILL
after ` + devnet.StopGrace.String() + `). If a child exits on its own, up reports it, stops the
others and exits with status 1. The children die with up even on kill -9
(Linux). Running up again on the same DIR resumes with the same balances
and payments; remove DIR to start from scratch.`,
	examples: `
remit up
go run ./cmd/remit up
remit up --dir /tmp/remit2 --base-port 9443
remit --log-format json up --dir .remit`,
	flags: func(fs *flag.FlagSet) runFunc {
		dir := fs.String("dir", devnet.DefaultDir, "keep the network in `DIR`")
		basePort := fs.Int("base-port", devnet.DefaultBasePort, "the gateway's `PORT` when up initialises DIR; the banks use the next three, then the metrics listeners the next four")
		customers := fs.Int("customers", 0, "open `N` extra funded customers when up initialises DIR (see remit init)")
		timeout := fs.Duration("timeout", 60*time.Second, "how long to wait for each process to become ready")
		postgres, replicas := storageFlags(fs, "when up initialises DIR")
		return func(ctx context.Context, e *env, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			if err := checkStorage(*postgres, *replicas); err != nil {
				return err
			}
			if err := checkBasePort(*basePort); err != nil {
				return err
			}
			if err := checkCustomers(*customers); err != nil {
				return err
			}
			portSet := false
			fs.Visit(func(f *flag.Flag) { portSet = portSet || f.Name == "base-port" })
			// Children log as up does: --log-format if given, else text
			// when up's stderr is a terminal (a child's stderr is a pipe).
			format := e.logFormat
			if format == "" && isTerminal(e.stderr) {
				format = logging.FormatText
			}
			return devnet.Up(ctx, devnet.UpConfig{
				Dir:         *dir,
				BasePort:    *basePort,
				BasePortSet: portSet,
				Customers:   *customers,
				Postgres:    *postgres,
				Replicas:    *replicas,
				Timeout:     *timeout,
				LogFormat:   format,
				Stdout:      e.stdout,
				Stderr:      e.stderr,
			})
		}
	},
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}
