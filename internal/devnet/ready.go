package devnet

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"

	"github.com/remitpay/remit/client"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/authz"
)

// pollInterval is how often Up re-checks a process that is not ready yet.
const pollInterval = 100 * time.Millisecond

// checkTimeout bounds one readiness check.
const checkTimeout = 2 * time.Second

// poll calls check every pollInterval until it returns nil, a process of
// the network exits, ctx ends or timeout passes. what names the awaited
// state of m in errors.
func poll(ctx context.Context, members []*member, m *member, timeout time.Duration, what string, check func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	for {
		for _, o := range members {
			if o.proc == nil || !o.proc.exitedNow() {
				continue
			}
			if o == m {
				return fmt.Errorf("%s exited before it was %s (%s); its log lines above say why", m.name, what, m.proc.describeExit())
			}
			return fmt.Errorf("%s exited while up waited for %s to be %s (%s); its log lines above say why", o.name, m.name, what, o.proc.describeExit())
		}
		cctx, cancel := context.WithTimeout(ctx, checkTimeout)
		err := check(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is not %s after %s: %w", m.name, what, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.proc.done:
		case <-time.After(pollInterval):
		}
	}
}

// healthCheck returns a readiness check of a process's standard gRPC
// health service.
func healthCheck(h *grpchealth.Client) func(context.Context) error {
	return func(ctx context.Context) error {
		res, err := h.Check(ctx, &grpchealth.CheckRequest{})
		if err != nil {
			return err
		}
		if res.Status != grpchealth.StatusServing {
			return fmt.Errorf("health status %s", res.Status)
		}
		return nil
	}
}

func waitHealthy(ctx context.Context, members []*member, m *member, timeout time.Duration) error {
	return poll(ctx, members, m, timeout, "healthy", m.healthy)
}

// waitRegistered waits until the gateway lists every bank as serving, so
// that the first payment after the banner cannot fail with BANK_NOT_FOUND.
// Only an admin may list banks: it logs gw in with the admin password from
// credentials.json, and skips the wait (with a note) when it cannot. It
// logs out again before it returns.
func waitRegistered(ctx context.Context, log *slog.Logger, l Layout, members []*member, gw *client.Client, timeout time.Duration) error {
	creds, err := LoadCredentials(l.CredentialsFile())
	admin := creds.Find(authz.RoleAdmin)
	if err != nil || admin == nil {
		log.Warn("cannot confirm the banks registered with the gateway (no admin password in credentials.json); payments fail with BANK_NOT_FOUND until they do", "err", err)
		return nil
	}
	want := make([]string, 0, len(members))
	for _, m := range banks(members) {
		want = append(want, m.name)
	}
	// Every replica: each keeps its own list of banks to call.
	for _, g := range gateways(members) {
		c := g.gateway
		if c == nil {
			c = gw // a member built without its client (the tests')
		}
		done, err := waitRegisteredAt(ctx, log, members, g, c, admin, want, timeout)
		if err != nil || !done {
			return err
		}
	}
	return nil
}

// waitRegisteredAt is waitRegistered at one gateway replica g. It reports
// false (with a warning) when the admin password no longer works.
func waitRegisteredAt(ctx context.Context, log *slog.Logger, members []*member, g *member, gw *client.Client, admin *Credential, want []string, timeout time.Duration) (bool, error) {
	err := poll(ctx, members, g, timeout, "accepting the admin login", func(ctx context.Context) error {
		_, err := gw.Login(ctx, admin.ClientID, admin.Password)
		return err
	})
	if connect.CodeOf(err) == connect.CodeUnauthenticated {
		log.Warn("cannot confirm the banks registered with the gateway (the admin password in credentials.json was changed); payments fail with BANK_NOT_FOUND until they do")
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), checkTimeout)
		defer cancel()
		// Best effort: an admin session left behind expires on its own.
		_ = gw.Logout(cctx)
	}()
	return true, poll(ctx, members, g, timeout, "reporting every bank registered and serving", func(ctx context.Context) error {
		banks, err := gw.Banks(ctx)
		if err != nil {
			return err
		}
		var missing []string
		for _, name := range want {
			if !slices.ContainsFunc(banks, func(b *gatewayv1.Bank) bool {
				return b.GetName() == name && b.GetStatus() == gatewayv1.BankStatus_BANK_STATUS_SERVING
			}) {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("waiting for %s", strings.Join(missing, ", "))
		}
		return nil
	})
}
