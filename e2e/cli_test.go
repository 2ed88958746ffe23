package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/logging/logtest"
)

// cliTimeout bounds one CLI command. A payment to an unreachable gateway
// gives up after about two seconds of retries; everything else is faster.
const cliTimeout = time.Minute

// cliUser runs the remit binary as one person at a terminal: their own
// state directory (REMIT_HOME), so profiles and outboxes never mix.
type cliUser struct {
	t    *testing.T
	name string
	home string
	env  []string // extra environment, e.g. REMIT_GATEWAY
}

func newCLIUser(t *testing.T, name string, env ...string) *cliUser {
	t.Helper()
	return &cliUser{t: t, name: name, home: filepath.Join(t.TempDir(), name), env: env}
}

// cliResult is one finished command.
type cliResult struct {
	code           int // exit status; -N when killed by signal N
	stdout, stderr string
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%sstderr:\n%s", r.code, r.stdout, r.stderr)
}

// command builds `remit args...` as u, with a clean environment: no
// REMIT_* variable of the developer's shell leaks in.
func (u *cliUser) command(ctx context.Context, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, remitBin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REMIT_") && !strings.HasPrefix(kv, "XDG_STATE_HOME=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "REMIT_HOME="+u.home)
	cmd.Env = append(cmd.Env, u.env...)
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// runEnv runs `remit args...` as u with stdin and extra environment.
func (u *cliUser) runEnv(stdin string, env []string, args ...string) cliResult {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := u.command(ctx, env, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := cliResult{stdout: out.String(), stderr: errOut.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.code = -int(ws.Signal())
		}
	default:
		u.t.Fatalf("%s: remit %s: %v", u.name, strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		u.t.Fatalf("%s: remit %s did not finish within %s:\n%s", u.name, strings.Join(args, " "), cliTimeout, r)
	}
	if strings.Contains(r.stderr, "WARNING: DATA RACE") {
		u.t.Errorf("%s: remit %s reported a data race:\n%s", u.name, strings.Join(args, " "), r.stderr)
	}
	return r
}

// run runs `remit args...` as u.
func (u *cliUser) run(args ...string) cliResult {
	u.t.Helper()
	return u.runEnv("", nil, args...)
}

// want runs `remit args...` and requires exit status code and every
// string of wants in its output (stdout and stderr).
func (u *cliUser) want(code int, wants []string, args ...string) cliResult {
	u.t.Helper()
	r := u.run(args...)
	u.check(r, code, wants, args...)
	return r
}

func (u *cliUser) check(r cliResult, code int, wants []string, args ...string) {
	u.t.Helper()
	if r.code != code {
		u.t.Fatalf("%s: remit %s: exit %d, want %d\n%s", u.name, strings.Join(args, " "), r.code, code, r)
	}
	for _, w := range wants {
		if !strings.Contains(r.stdout+r.stderr, w) {
			u.t.Errorf("%s: remit %s: output lacks %q\n%s", u.name, strings.Join(args, " "), w, r)
		}
	}
}

// login logs u in with --password-stdin, as a script would, with the
// gateway and CA given as flags.
func (u *cliUser) login(dir string, port int, password string) {
	u.t.Helper()
	args := []string{"login", "--gateway", gatewayURL(port), "--ca", filepath.Join(dir, "certs", "ca.pem"), "--password-stdin", u.name}
	r := u.runEnv(password+"\n", nil, args...)
	u.check(r, 0, []string{"Logged in as " + u.name}, args...)
}

// jsonOut runs `remit args... --json`, requires exit status code, and
// decodes stdout into v (protojson for proto messages, else JSON).
func (u *cliUser) jsonOut(code int, v any, args ...string) {
	u.t.Helper()
	args = append(args, "--json")
	r := u.run(args...)
	if r.code != code {
		u.t.Fatalf("%s: remit %s: exit %d, want %d\n%s", u.name, strings.Join(args, " "), r.code, code, r)
	}
	var err error
	if m, ok := v.(proto.Message); ok {
		err = protojson.Unmarshal([]byte(r.stdout), m)
	} else {
		err = json.Unmarshal([]byte(r.stdout), v)
	}
	if err != nil {
		u.t.Fatalf("%s: remit %s: stdout is not the JSON of a %T: %v\n%s", u.name, strings.Join(args, " "), v, err, r)
	}
}

// balance returns u's balance in cents, read with `remit balance --json`.
func (u *cliUser) balance() int64 {
	u.t.Helper()
	var res gatewayv1.CheckBalanceResponse
	u.jsonOut(0, &res, "balance")
	return res.GetBalance()
}

func gatewayURL(port int) string { return fmt.Sprintf("https://127.0.0.1:%d", port) }

var transactionIDLine = regexp.MustCompile(`Transaction id: ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})`)

// txID returns the transaction id a pay command printed.
func txID(t *testing.T, r cliResult) string {
	t.Helper()
	m := transactionIDLine.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no transaction id in the output:\n%s", r)
	}
	return m[1]
}

// background is a long-running CLI command (payments watch) whose output
// the test waits on.
type background struct {
	t      *testing.T
	cmd    *exec.Cmd
	mu     sync.Mutex // guards out
	out    strings.Builder
	errOut logtest.Buffer
	done   chan struct{}
	err    error
}

func (u *cliUser) start(args ...string) *background {
	u.t.Helper()
	b := &background{t: u.t, done: make(chan struct{})}
	b.cmd = u.command(context.Background(), nil, args...)
	b.cmd.Stderr = &b.errOut
	stdout, err := b.cmd.StdoutPipe()
	if err != nil {
		u.t.Fatal(err)
	}
	if err := b.cmd.Start(); err != nil {
		u.t.Fatal(err)
	}
	u.t.Cleanup(func() {
		_ = b.cmd.Process.Kill() // it may have exited already; done says when it has
		<-b.done
	})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			b.mu.Lock()
			b.out.WriteString(sc.Text() + "\n")
			b.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, stdout) // drain; Wait's result is what counts
		b.err = b.cmd.Wait()
		close(b.done)
	}()
	return b
}

func (b *background) output() string {
	b.mu.Lock()
	out := b.out.String()
	b.mu.Unlock()
	return out + b.errOut.String()
}

// waitFor waits until a line of stdout matches all of wants.
func (b *background) waitFor(wants ...string) {
	b.t.Helper()
	deadline := time.Now().Add(cliTimeout)
	for {
		b.mu.Lock()
		out := b.out.String()
		b.mu.Unlock()
		for line := range strings.SplitSeq(out, "\n") {
			ok := true
			for _, w := range wants {
				ok = ok && strings.Contains(line, w)
			}
			if ok {
				return
			}
		}
		select {
		case <-b.done:
			b.t.Fatalf("%s exited (%v) before printing a line with %q:\n%s", b.cmd.Args, b.err, wants, b.output())
		default:
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s printed no line with %q within %s:\n%s", b.cmd.Args, wants, cliTimeout, b.output())
		}
		time.Sleep(pollEvery)
	}
}

// interrupt sends Ctrl-C (SIGINT) and returns the exit status.
func (b *background) interrupt() int {
	b.t.Helper()
	if err := b.cmd.Process.Signal(os.Interrupt); err != nil {
		b.t.Fatal(err)
	}
	select {
	case <-b.done:
	case <-time.After(stopTimeout):
		b.t.Fatalf("%s did not exit within %s of Ctrl-C", b.cmd.Args, stopTimeout)
	}
	if ee, ok := errors.AsType[*exec.ExitError](b.err); ok {
		return ee.ExitCode()
	}
	return 0
}

// bannerCommand returns the arguments of the banner's example command
// that starts with prefix ("remit login "), without "remit".
func bannerCommand(t *testing.T, banner, prefix string) []string {
	t.Helper()
	for line := range strings.SplitSeq(banner, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		var args []string
		for _, f := range strings.Fields(line)[1:] {
			args = append(args, strings.Trim(f, "'"))
		}
		return args
	}
	t.Fatalf("the banner has no %q example:\n%s", prefix, banner)
	return nil
}

// TestCLISession is a person at a terminal, scripted: alice logs in, pays
// bob, checks her balance, is declined, lists her payments; bob follows
// his payments in the background, sees a new one arrive and acknowledges
// it. Everything goes through the real binary against `remit up`.
func TestCLISession(t *testing.T) {
	skipIfShort(t)
	dir := filepath.Join(t.TempDir(), "net")
	port := freeBasePort(t)
	up := startUp(t, dir, port)
	pw := readPasswords(t, dir)

	// Alice logs in with the banner's example, as a script would
	// (--password-stdin).
	alice := newCLIUser(t, "alice")
	args := bannerCommand(t, up.output(), "remit login ")
	r := alice.runEnv(pw["alice"]+"\n", nil, append(args[:len(args)-1], "--password-stdin", args[len(args)-1])...)
	alice.check(r, 0, []string{"Logged in as alice (account bank-a/alice, customer) at " + gatewayURL(port)}, args...)
	alice.want(0, []string{"alice (account bank-a/alice, customer)", gatewayURL(port)}, "whoami")
	var who struct {
		ClientID, Account, GatewayURL string
	}
	alice.jsonOut(0, &who, "whoami")
	if who.ClientID != "alice" || who.Account != "bank-a/alice" || who.GatewayURL != gatewayURL(port) {
		t.Errorf("whoami --json = %+v", who)
	}

	// Pay: the outcome and the transaction id.
	r = alice.want(0, []string{"SUCCEEDED", "12.50 usd from bank-a/alice to bank-b/bob"},
		"pay", "--to", "bank-b/bob", "--amount", "12.50", "--description", "lunch")
	lunch := txID(t, r)
	var p gatewayv1.Payment
	alice.jsonOut(0, &p, "payments", "get", lunch)
	if p.GetStatus() != gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED || p.GetAmount() != 1250 || p.GetDescription() != "lunch" {
		t.Errorf("payments get %s --json = %v", lunch, &p)
	}
	alice.want(0, []string{"987.50 usd"}, "balance")
	if got := alice.balance(); got != 98750 {
		t.Errorf("balance --json = %d cents, want 98750", got)
	}

	// A decline says why and what to do, with the transaction id; exit 1.
	r = alice.want(1, []string{"DECLINED", "insufficient funds", "No money moved", "deposit funds or pay a smaller amount"},
		"pay", "--to", "bank-b/bob", "--amount", "5000")
	declined := txID(t, r)
	var out struct {
		Status, TransactionID string
		Error                 struct{ Code, Reason string }
	}
	alice.jsonOut(1, &out, "pay", "--to", "bank-b/bob", "--amount", "5000.00")
	if out.Status != "DECLINED" || out.Error.Code != "failed_precondition" || out.Error.Reason != "INSUFFICIENT_FUNDS" || out.TransactionID == "" {
		t.Errorf("declined pay --json = %+v", out)
	}
	if got := alice.balance(); got != 98750 {
		t.Errorf("after the declines alice has %d cents, want 98750", got)
	}

	// The list shows both, newest first.
	r = alice.want(0, []string{lunch, declined, "FAILED (insufficient funds)", "SUCCEEDED"}, "payments", "list")
	if strings.Index(r.stdout, declined) > strings.Index(r.stdout, lunch) {
		t.Errorf("payments list is not newest first:\n%s", r.stdout)
	}
	var list gatewayv1.ListPaymentsResponse
	alice.jsonOut(0, &list, "payments", "list", "--limit", "2")
	if len(list.GetPayments()) != 2 {
		t.Errorf("payments list --limit 2 --json has %d payments, want 2", len(list.GetPayments()))
	}

	// Bob logs in through the environment, and follows his payments.
	bob := newCLIUser(t, "bob", "REMIT_GATEWAY="+gatewayURL(port), "REMIT_CA="+filepath.Join(dir, "certs", "ca.pem"))
	r = bob.runEnv(pw["bob"]+"\n", nil, "login", "--password-stdin", "bob")
	bob.check(r, 0, []string{"Logged in as bob (account bank-b/bob, customer) at " + gatewayURL(port)}, "login")
	watch := bob.start("payments", "watch")
	watch.waitFor("SUCCEEDED", lunch) // the replay: the stream is open
	r = alice.want(0, []string{"SUCCEEDED"}, "pay", "--to", "bank-b/bob", "--amount", "3.25", "--description", "coffee")
	coffee := txID(t, r)
	watch.waitFor("SUCCEEDED", coffee, "3.25 usd from bank-a/alice to bank-b/bob", `"coffee"`)
	if code := watch.interrupt(); code != 0 {
		t.Errorf("payments watch exited %d on Ctrl-C, want 0:\n%s", code, watch.output())
	}

	bob.want(0, []string{"Acknowledged " + coffee}, "payments", "ack", coffee)
	bob.jsonOut(0, &p, "payments", "get", coffee)
	if p.GetAcknowledgeTime() == nil {
		t.Errorf("after ack, payments get %s has no acknowledge time: %v", coffee, &p)
	}
	if got := bob.balance(); got != 100000+1250+325 {
		t.Errorf("bob has %d cents, want %d", got, 100000+1250+325)
	}

	// Mistakes: usage errors exit 2 and point at --help; others say what to do.
	alice.want(2, []string{"more than 2 decimals", "remit pay --help"}, "pay", "--to", "bank-b/bob", "--amount", "12.505")
	alice.want(2, []string{`unknown subcommand "bogus"`}, "payments", "bogus")
	alice.want(1, []string{"permission denied", "remit login admin"}, "admin", "banks")
	alice.want(1, []string{"permission denied"}, "payments", "ack", coffee) // only the payee acknowledges

	alice.want(0, []string{"Logged out alice"}, "logout")
	alice.want(1, []string{"not logged in: run `remit login CLIENT_ID`"}, "balance")
}
