package devnet

import (
	"fmt"
	"io"
	"strings"
)

// printBanner tells people what is running and how to talk to it. Every
// example really works against this network once ALICE-PASSWORD is
// replaced by alice's password from credentials.json: the banner never
// prints a password, because captured output (a terminal's scrollback, a
// CI log) keeps whatever it shows.
func printBanner(w io.Writer, l Layout, members []*member, caFile string) {
	gw := members[0]
	gwAddr := strings.TrimPrefix(gw.url, "https://")
	ca := shellQuote(caFile)

	if n := len(gateways(members)); n > 1 {
		fmt.Fprintf(w, "Remit is up: %d gateway replicas on one PostgreSQL database and %d banks, TLS 1.3 only.\n\n", n, len(banks(members)))
	} else {
		fmt.Fprintf(w, "Remit is up: the gateway and %d banks, TLS 1.3 only.\n\n", len(banks(members)))
	}
	width := 0
	for _, m := range members {
		width = max(width, len(m.name))
	}
	for _, m := range members {
		fmt.Fprintf(w, "  %-*s  %-24s  pid %d", width, m.name, m.url, m.proc.cmd.Process.Pid)
		if m.metrics != "" {
			fmt.Fprintf(w, ", metrics %s", metricsURL(m.metrics))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\n  CA certificate  %s\n", caFile)
	fmt.Fprintf(w, "  Credentials     %s (demo passwords, never printed)\n", l.CredentialsFile())
	fmt.Fprintf(w, "  Data            %s\n", l.DataDir())
	fmt.Fprintf(w, "  Wallet          %s/ (in a browser: trust the CA certificate, or accept the warning once)\n", gw.url)
	fmt.Fprintf(w, `
Try it:

  # Connect JSON with curl: log in as alice (her password is in credentials.json), then use the accessToken
  curl --cacert %[1]s -H 'Content-Type: application/json' -d '{"clientId":"alice","password":"ALICE-PASSWORD"}' %[2]s/remit.gateway.v1.AuthService/Login

  # gRPC with grpcurl (reflection is on)
  grpcurl -cacert %[1]s %[3]s list

  # the remit CLI (go build -o bin/remit ./cmd/remit): log in as alice, pay bob, check the balance
  remit login --gateway %[2]s --ca %[1]s alice
  remit pay --to bank-b/bob --amount 12.50 && remit balance

%[4]s  # more in README.md, docs/cli.md, docs/api.md and docs/operations.md

%[5]s
`, ca, gw.url, gwAddr, metricsExample(gw), ReadyLine)
}

// metricsURL is the Prometheus endpoint of an admin listener address.
func metricsURL(listen string) string { return "http://" + dialAddr(listen) + "/metrics" }

// metricsExample shows the gateway's metrics and profiles, if it has an
// admin listener.
func metricsExample(gw *member) string {
	if gw.metrics == "" {
		return ""
	}
	return fmt.Sprintf(`  # Prometheus metrics and pprof (plain HTTP, loopback only; every process has its own)
  curl -s %s | grep ^remit_
  go tool pprof http://%s/debug/pprof/profile?seconds=10

`, metricsURL(gw.metrics), dialAddr(gw.metrics))
}
