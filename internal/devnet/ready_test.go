package devnet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"connectrpc.com/grpchealth"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/client/clienttest"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
)

// running returns a member whose process is running (never exits unless
// the test makes it).
func running(name string) *member {
	return &member{name: name, proc: &proc{name: name, done: make(chan struct{})}}
}

// exit makes m's process exit with err.
func exit(m *member, err error) {
	m.proc.err = err
	close(m.proc.done)
}

func TestPollSucceeds(t *testing.T) {
	m := running("gateway")
	calls := 0
	err := poll(context.Background(), []*member{m}, m, 10*time.Second, "healthy", func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("a check runs without a deadline")
		}
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("poll = %v after %d checks; want nil after 3", err, calls)
	}
}

func TestPollTimesOut(t *testing.T) {
	m := running("bank-a")
	err := poll(context.Background(), []*member{m}, m, 250*time.Millisecond, "healthy", func(context.Context) error {
		return errors.New("connection refused")
	})
	if want := "bank-a is not healthy after 250ms: connection refused"; err == nil || err.Error() != want {
		t.Errorf("poll = %v, want %q", err, want)
	}
}

func TestPollStopsWhenAProcessExits(t *testing.T) {
	exitErr := exec.Command("sh", "-c", "exit 3").Run()
	if exitErr == nil {
		t.Skip("no sh")
	}
	for _, tt := range []struct {
		name, exits, want string
	}{
		{"the awaited one", "gateway", "gateway exited before it was healthy (exit status 3); its log lines above say why"},
		{"another one", "bank-a", "bank-a exited while up waited for gateway to be healthy (exit status 3); its log lines above say why"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			gw, bank := running("gateway"), running("bank-a")
			members := []*member{gw, bank}
			calls := 0
			err := poll(context.Background(), members, gw, time.Minute, "healthy", func(context.Context) error {
				if calls++; calls == 2 {
					for _, m := range members {
						if m.name == tt.exits {
							exit(m, exitErr)
						}
					}
				}
				return errors.New("not yet")
			})
			if err == nil || err.Error() != tt.want {
				t.Errorf("poll = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestPollEndsWithCtx(t *testing.T) {
	m := running("gateway")
	ctx, cancel := context.WithCancel(context.Background())
	err := poll(ctx, []*member{m}, m, time.Minute, "healthy", func(context.Context) error {
		cancel()
		return errors.New("not yet")
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("poll = %v, want context.Canceled", err)
	}
}

// registration is a network of members in front of a fake gateway, which
// knows bank-a and bank-b as serving and the admin "admin"/"admin-pw".
func registration(t *testing.T, adminPassword string, banks ...string) (Layout, []*member, *client.Client, *clienttest.Gateway, *bytes.Buffer) {
	t.Helper()
	g := clienttest.New(t)
	cfg := g.Config()
	cfg.Retry = &client.RetryPolicy{MaxAttempts: 1}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	l := Layout{Dir: t.TempDir()}
	if adminPassword != "" {
		creds := Credentials{Users: []Credential{
			{ClientID: "alice", Password: "alice-pw", Roles: []string{"customer"}},
			{ClientID: "admin", Password: adminPassword, Roles: []string{"admin"}},
		}}
		data, err := json.Marshal(creds)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(l.CredentialsFile(), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	members := []*member{running("gateway")}
	for _, b := range banks {
		members = append(members, running(b))
	}
	var logs bytes.Buffer
	return l, members, c, g, &logs
}

// TestWaitRegistered checks that up logs in as the admin through the SDK,
// lists the banks with the admin's token until every bank serves, and logs
// out again.
func TestWaitRegistered(t *testing.T) {
	l, members, c, g, logs := registration(t, "admin-pw", "bank-a", "bank-b")
	log := slog.New(slog.NewTextHandler(logs, nil))
	if err := waitRegistered(context.Background(), log, l, members, c, 10*time.Second); err != nil {
		t.Fatalf("waitRegistered = %v", err)
	}
	var procs []string
	var token string
	for _, call := range g.Calls() {
		procs = append(procs, call.Procedure)
		switch call.Procedure {
		case gatewayv1connect.AuthServiceLoginProcedure:
			if call.Token != "" {
				t.Errorf("Login sent a token")
			}
		case gatewayv1connect.AdminServiceListBanksProcedure:
			token = call.Token
			if token == "" {
				t.Error("ListBanks sent no bearer token")
			}
		case gatewayv1connect.AuthServiceLogoutProcedure:
			if call.Token != token {
				t.Errorf("Logout sent token %q, ListBanks %q", call.Token, token)
			}
		}
	}
	want := []string{gatewayv1connect.AuthServiceLoginProcedure, gatewayv1connect.AdminServiceListBanksProcedure, gatewayv1connect.AuthServiceLogoutProcedure}
	if strings.Join(procs, " ") != strings.Join(want, " ") {
		t.Errorf("calls %v, want %v", procs, want)
	}
	if c.Token() != "" {
		t.Error("waitRegistered left the admin logged in")
	}
	if logs.Len() != 0 {
		t.Errorf("logged %q", logs)
	}
}

func TestWaitRegisteredTimesOutOnAMissingBank(t *testing.T) {
	l, members, c, g, logs := registration(t, "admin-pw", "bank-a", "bank-c")
	log := slog.New(slog.NewTextHandler(logs, nil))
	err := waitRegistered(context.Background(), log, l, members, c, 300*time.Millisecond)
	if want := "gateway is not reporting every bank registered and serving after 300ms: waiting for bank-c"; err == nil || err.Error() != want {
		t.Errorf("waitRegistered = %v, want %q", err, want)
	}
	if last := g.Calls()[len(g.Calls())-1]; last.Procedure != gatewayv1connect.AuthServiceLogoutProcedure {
		t.Errorf("last call %s; waitRegistered must log out even when it fails", last.Procedure)
	}
}

func TestWaitRegisteredWithoutCredentials(t *testing.T) {
	l, members, c, g, logs := registration(t, "", "bank-a", "bank-b")
	log := slog.New(slog.NewTextHandler(logs, nil))
	if err := waitRegistered(context.Background(), log, l, members, c, 10*time.Second); err != nil {
		t.Fatalf("waitRegistered = %v", err)
	}
	if n := len(g.Calls()); n != 0 {
		t.Errorf("waitRegistered made %d calls without an admin password", n)
	}
	if !strings.Contains(logs.String(), "no admin password in credentials.json") {
		t.Errorf("no warning: %q", logs)
	}
}

// TestHealthCheck checks both readiness checks: the gateway's through the
// SDK, a bank's through the standard health service of the whole server.
func TestHealthCheck(t *testing.T) {
	g := clienttest.New(t)
	c, err := client.New(g.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	checker := grpchealth.NewStaticChecker()
	mux := http.NewServeMux()
	mux.Handle(grpchealth.NewHandler(checker))
	bank := httptest.NewUnstartedServer(mux)
	bank.EnableHTTP2 = true
	bank.StartTLS()
	defer bank.Close()

	for _, tt := range []struct {
		name       string
		check      func(context.Context) error
		setServing func(bool)
	}{
		{"gateway", c.Health, g.SetServing},
		{"bank", healthCheck(grpchealth.NewClient(bank.Client(), bank.URL)), func(serving bool) {
			st := grpchealth.StatusServing
			if !serving {
				st = grpchealth.StatusNotServing
			}
			checker.SetStatus("", st)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := running(tt.name)
			m.healthy = tt.check
			if err := waitHealthy(context.Background(), []*member{m}, m, 10*time.Second); err != nil {
				t.Errorf("waitHealthy on a serving server = %v", err)
			}
			tt.setServing(false)
			err = waitHealthy(context.Background(), []*member{m}, m, 250*time.Millisecond)
			if err == nil || !strings.Contains(err.Error(), tt.name+" is not healthy after 250ms") || !strings.Contains(strings.ToLower(err.Error()), "not_serving") {
				t.Errorf("waitHealthy on a server not serving = %v", err)
			}
		})
	}
}
