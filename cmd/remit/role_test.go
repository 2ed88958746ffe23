package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remitpay/remit/internal/config"
	"github.com/remitpay/remit/internal/devnet"
)

// initRoles writes a network whose ports are free now and returns it.
func initRoles(t *testing.T) devnet.Layout {
	t.Helper()
	ports, err := devnet.ReserveBasePort(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ports.Release)
	base := ports.Base
	l, err := devnet.Init(context.Background(), new(bytes.Buffer), filepath.Join(t.TempDir(), "net"), base)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestRoleServesUntilStopped runs `remit bank` in-process: it listens, with
// its metrics on the admin listener its config names, until its context
// ends (as on SIGTERM), then shuts down and exits 0.
func TestRoleServesUntilStopped(t *testing.T) {
	l := initRoles(t)
	b, err := config.LoadBank(l.BankConfig("bank-a"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- runEnv(ctx, &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr},
			[]string{"--log-format", "json", "bank", "--config", l.BankConfig("bank-a")})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", b.Listen, time.Second)
		if err == nil {
			_ = c.Close() // only probing that the bank listens
			break
		}
		select {
		case code := <-done:
			t.Fatalf("bank exited with %d before it listened; stderr:\n%s", code, &stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("bank never listened on %s: %v", b.Listen, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if b.MetricsListen == "" {
		t.Fatal("remit init wrote no metrics_listen for bank-a")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.MetricsListen+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape bank-a: %v", err)
	}
	body, err := io.ReadAll(res.Body)
	if cerr := res.Body.Close(); err == nil {
		err = cerr
	}
	if err != nil || res.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("\nremit_bank_accounts 2\n")) {
		t.Errorf("scrape bank-a: %v %v, want remit_bank_accounts 2 in:\n%.2000s", res.Status, err, body)
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("bank stopped with exit status %d, want 0; stderr:\n%s", code, &stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("bank did not stop after its context ended")
	}
	if !strings.Contains(stderr.String(), `"bank":"bank-a"`) {
		t.Errorf("bank did not log as JSON with --log-format json:\n%s", &stderr)
	}
}

// TestRoleFailsBeforeListening checks that a role with a bad certificate
// fails before it creates anything or listens.
func TestRoleFailsBeforeListening(t *testing.T) {
	for _, role := range []string{"gateway", "bank"} {
		t.Run(role, func(t *testing.T) {
			l := initRoles(t)
			path, cert := l.GatewayConfig(), filepath.Join(l.CertsDir(), "gateway.pem")
			if role == "bank" {
				path, cert = l.BankConfig("bank-a"), filepath.Join(l.CertsDir(), "bank-a.pem")
			}
			if err := os.RemoveAll(l.DataDir()); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(cert, []byte("not a certificate"), 0o600); err != nil {
				t.Fatal(err)
			}
			code, _, errOut := remit(t, "", role, "--config", path)
			if code != exitFailure || !strings.HasPrefix(errOut, "remit "+role+": ") {
				t.Errorf("%s with a bad certificate = %d, %q; want 1", role, code, errOut)
			}
			if _, err := os.Stat(l.DataDir()); !os.IsNotExist(err) {
				t.Errorf("%s created its data dir although its certificate is bad: %v", role, err)
			}
		})
	}
}
