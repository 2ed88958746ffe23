package gateway_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
	"github.com/remitpay/remit/internal/auth"
	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/internal/rpcerr"
	"github.com/remitpay/remit/internal/serve"
	"github.com/remitpay/remit/services/gateway"
	"github.com/remitpay/remit/services/gateway/gatewaytest"
)

// The security tests attack a real network (gatewaytest: a gateway and three
// banks over mutual TLS, with SQLite) from outside. The matrix calls every
// procedure of the gateway's services, enumerated from the generated
// descriptors, as every kind of caller, over Connect, gRPC and gRPC-Web, and
// requires the exact code each one gets. Requests name alice's account and
// payments wherever the procedure takes one, so that "other customer" is bob
// acting on alice's things; an allowed call is shaped to succeed (or to end
// in a domain error), so that it never shows up as unauthenticated or
// permission_denied by accident.
//
// Identifiers of these tests start with "sec" so that they cannot collide
// with the integration tests sharing this package.

// secOK stands for a successful call in the expectation grid.
const secOK connect.Code = 0

// secCallTimeout bounds one cell of the matrix, retries included.
const secCallTimeout = 15 * time.Second

// secIdentityNames are the callers of the matrix, in the column order of the
// expectation grid.
//
// "no token" and "no client cert" are the same on the wire: the gateway
// accepts TLS connections without a client certificate (customers and
// browsers have none), so a caller with neither a certificate nor a token is
// anonymous either way. A bank refusing certificate-less handshakes is
// tested in services/bank.
var secIdentityNames = []string{
	"no token",       // TLS without a client certificate, no Authorization header
	"expired token",  // alice's token from a gateway whose tokens live 1ms
	"revoked token",  // alice's token after Logout
	"forged token",   // a well-formed rmt_ token the gateway never issued
	"customer",       // alice
	"other customer", // bob, naming alice's account and payments
	"auditor",        // role auditor
	"admin",          // role admin
	"bank cert",      // bank-a's client certificate, no token
	"gateway cert",   // the gateway's client certificate, no token
	"no client cert", // see above
	"cert and token", // bank-a's client certificate and alice's token at once
}

// secProtocols are the wire protocols every cell runs over.
var secProtocols = []struct {
	name string
	opts []connect.ClientOption
}{
	{"connect", nil},
	{"grpc", []connect.ClientOption{connect.WithGRPC()}},
	{"grpcweb", []connect.ClientOption{connect.WithGRPCWeb()}},
}

// secRow is one procedure of the matrix.
type secRow struct {
	// want is the code of each identity, in secIdentityNames order.
	want []connect.Code
	// call makes a minimal valid request as c.
	call func(ctx context.Context, t *testing.T, c *secCaller) (proto.Message, error)
	// check, if set, inspects a successful response.
	check func(t *testing.T, c *secCaller, res proto.Message)
}

// secMatrix is the expected outcome of every procedure for every identity.
func secMatrix() map[string]secRow {
	const (
		ok       = secOK
		unauth   = connect.CodeUnauthenticated
		denied   = connect.CodePermissionDenied
		notFound = connect.CodeNotFound
	)
	alice := func() *gatewayv1.AccountRef { return gatewaytest.Ref("alice") }
	return map[string]secRow{
		// Columns: no token, expired, revoked, forged, customer, other customer,
		// auditor, admin, bank cert, gateway cert, no client cert, cert and token.

		// Login is public: credentials sent along, valid or not, are ignored.
		gatewayv1connect.AuthServiceLoginProcedure: {
			want: []connect.Code{ok, ok, ok, ok, ok, ok, ok, ok, ok, ok, ok, ok},
			call: func(ctx context.Context, _ *testing.T, c *secCaller) (proto.Message, error) {
				return c.auth.Login(ctx, &gatewayv1.LoginRequest{ClientId: "alice", Password: gatewaytest.Password})
			},
			check: func(t *testing.T, _ *secCaller, res proto.Message) {
				t.Helper()
				r := res.(*gatewayv1.LoginResponse)
				if !strings.HasPrefix(r.GetAccessToken(), auth.TokenPrefix) || r.GetClient().GetClientId() != "alice" {
					t.Errorf("Login = %v, want a token for alice", r)
				}
			},
		},
		gatewayv1connect.AuthServiceLogoutProcedure: {
			want: []connect.Code{unauth, unauth, unauth, unauth, ok, ok, ok, ok, denied, denied, unauth, unauth},
			call: func(ctx context.Context, t *testing.T, c *secCaller) (proto.Message, error) {
				t.Helper()
				// Logout spends the session it is called with: log in afresh
				// first, as setup (it retries under its own deadlines).
				return c.fresh(t).auth.Logout(ctx, &gatewayv1.LogoutRequest{}) //nolint:contextcheck // the fresh login is setup under the test's context, not part of the call ctx bounds
			},
		},
		// MakePayment has no payer field: whoever calls pays from their own
		// account, so bob's call succeeds as a payment from bob.
		gatewayv1connect.PaymentServiceMakePaymentProcedure: {
			want: []connect.Code{unauth, unauth, unauth, unauth, ok, ok, denied, denied, denied, denied, unauth, unauth},
			call: func(ctx context.Context, _ *testing.T, c *secCaller) (proto.Message, error) {
				req := &gatewayv1.MakePaymentRequest{
					TransactionId: uuid.NewString(), Payee: gatewaytest.Ref("carol"), Amount: 1,
					Currency: gatewaytest.Currency, Description: "security matrix",
				}
				return secRetry(ctx, func(ctx context.Context) (*gatewayv1.MakePaymentResponse, error) {
					return c.pay.MakePayment(ctx, req)
				})
			},
			check: func(t *testing.T, c *secCaller, res proto.Message) {
				t.Helper()
				p := res.(*gatewayv1.MakePaymentResponse).GetPayment()
				if !proto.Equal(p.GetPayer(), gatewaytest.Ref(c.id.login)) || p.GetPayerClientId() != c.id.login ||
					p.GetStatus() != gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED {
					t.Errorf("payment by %s = %v, want a succeeded payment from %s's own account", c.id.login, p, c.id.login)
				}
			},
		},
		gatewayv1connect.PaymentServiceGetPaymentProcedure: {
			want: []connect.Code{unauth, unauth, unauth, unauth, ok, notFound, ok, ok, denied, denied, unauth, unauth},
			call: func(ctx context.Context, _ *testing.T, c *secCaller) (proto.Message, error) {
				return c.pay.GetPayment(ctx, &gatewayv1.GetPaymentRequest{TransactionId: c.env.fx.received})
			},
			check: func(t *testing.T, c *secCaller, res proto.Message) {
				t.Helper()
				if got := res.(*gatewayv1.GetPaymentResponse).GetPayment().GetTransactionId(); got != c.env.fx.received {
					t.Errorf("GetPayment returned payment %s, want %s", got, c.env.fx.received)
				}
			},
		},
		gatewayv1connect.PaymentServiceListPaymentsProcedure: {
			want: []connect.Code{unauth, unauth, unauth, unauth, ok, denied, ok, ok, denied, denied, unauth, unauth},
			call: func(ctx context.Context, _ *testing.T, c *secCaller) (proto.Message, error) {
				return c.pay.ListPayments(ctx, &gatewayv1.ListPaymentsRequest{Account: alice(), PageSize: 100})
			},
			check: func(t *testing.T, _ *secCaller, res proto.Message) {
				t.Helper()
				ps := res.(*gatewayv1.ListPaymentsResponse).GetPayments()
				if len(ps) == 0 {
					t.Error("ListPayments of alice's account is empty")
				}
				for _, p := range ps {
					if !secInvolves(p, "alice") {
						t.Errorf("ListPayments of alice's account lists %v", p)
					}
				}
			},
		},
		gatewayv1connect.PaymentServiceCheckBalanceProcedure: {
			want: []connect.Code{unauth, unauth, unauth, unauth, ok, denied, ok, ok, denied, denied, unauth, unauth},
			call: func(ctx context.Context, _ *testing.T, c *secCaller) (proto.Message, error) {
				return secRetry(ctx, func(ctx context.Context) (*gatewayv1.CheckBalanceResponse, error) {
					return c.pay.CheckBalance(ctx, &gatewayv1.CheckBalanceRequest{Account: alice()})
				})
			},
			check: func(t *testing.T, _ *secCaller, res proto.Message) {
				t.Helper()
				r := res.(*gatewayv1.CheckBalanceResponse)
				if !proto.Equal(r.GetAccount(), alice()) || r.GetCurrency() != gatewaytest.Currency {
					t.Errorf("CheckBalance = %v, want alice's account", r)
				}
			},
		},
		gatewayv1connect.PaymentServiceWatchPaymentsProcedure: {
			want: []connect.Code{unauth, unauth, unauth, unauth, ok, denied, ok, ok, denied, denied, unauth, unauth},
			call: func(ctx context.Context, _ *testing.T, c *secCaller) (proto.Message, error) {
				ctx, cancel := context.WithCancel(ctx)
				stream, err := c.pay.WatchPayments(ctx, &gatewayv1.WatchPaymentsRequest{Account: alice()})
				if err != nil {
					cancel()
					return nil, err
				}
				defer func() {
					cancel()           // before Close, which would otherwise drain a live stream
					_ = stream.Close() // canceled above: the close only releases it
				}()
				// alice's account has events (the fixture's payment), so an
				// allowed watch answers at once.
				if !stream.Receive() {
					if err := stream.Err(); err != nil {
						return nil, err
					}
					return nil, errors.New("the watch ended without an event")
				}
				return stream.Msg(), nil
			},
			check: func(t *testing.T, _ *secCaller, res proto.Message) {
				t.Helper()
				if e := res.(*gatewayv1.WatchPaymentsResponse); !proto.Equal(e.GetAccount(), alice()) {
					t.Errorf("watching alice's account sent %v", e)
				}
			},
		},
		// Only the payee acknowledges: the fixture's payment was received by
		// alice. Acknowledging again is harmless, so every protocol succeeds.
		gatewayv1connect.PaymentServiceAcknowledgePaymentProcedure: {
			want: []connect.Code{unauth, unauth, unauth, unauth, ok, notFound, denied, denied, denied, denied, unauth, unauth},
			call: func(ctx context.Context, _ *testing.T, c *secCaller) (proto.Message, error) {
				return c.pay.AcknowledgePayment(ctx, &gatewayv1.AcknowledgePaymentRequest{TransactionId: c.env.fx.received})
			},
			check: func(t *testing.T, _ *secCaller, res proto.Message) {
				t.Helper()
				if p := res.(*gatewayv1.AcknowledgePaymentResponse).GetPayment(); p.GetAcknowledgeTime() == nil {
					t.Errorf("acknowledged payment %v has no acknowledge_time", p)
				}
			},
		},
		gatewayv1connect.AdminServiceUpdateBalanceProcedure: {
			want: []connect.Code{unauth, unauth, unauth, unauth, denied, denied, denied, ok, denied, denied, unauth, unauth},
			call: func(ctx context.Context, _ *testing.T, c *secCaller) (proto.Message, error) {
				req := &gatewayv1.UpdateBalanceRequest{
					TransactionId: uuid.NewString(), Account: alice(), Direction: gatewayv1.Direction_DIRECTION_CREDIT,
					Amount: 1, Currency: gatewaytest.Currency,
				}
				return secRetry(ctx, func(ctx context.Context) (*gatewayv1.UpdateBalanceResponse, error) {
					return c.admin.UpdateBalance(ctx, req)
				})
			},
			check: func(t *testing.T, _ *secCaller, res proto.Message) {
				t.Helper()
				if r := res.(*gatewayv1.UpdateBalanceResponse); !proto.Equal(r.GetAccount(), alice()) {
					t.Errorf("UpdateBalance = %v, want alice's account", r)
				}
			},
		},
		gatewayv1connect.AdminServiceListBanksProcedure: {
			want: []connect.Code{unauth, unauth, unauth, unauth, denied, denied, ok, ok, denied, denied, unauth, unauth},
			call: func(ctx context.Context, _ *testing.T, c *secCaller) (proto.Message, error) {
				return c.admin.ListBanks(ctx, &gatewayv1.ListBanksRequest{})
			},
			check: func(t *testing.T, _ *secCaller, res proto.Message) {
				t.Helper()
				if n := len(res.(*gatewayv1.ListBanksResponse).GetBanks()); n != len(gatewaytest.BankNames) {
					t.Errorf("ListBanks lists %d banks, want %d", n, len(gatewaytest.BankNames))
				}
			},
		},
		// alice has no failed logins in this network: the cell clears nothing.
		gatewayv1connect.AdminServiceClearLoginLockoutProcedure: {
			want: []connect.Code{unauth, unauth, unauth, unauth, denied, denied, denied, ok, denied, denied, unauth, unauth},
			call: func(ctx context.Context, _ *testing.T, c *secCaller) (proto.Message, error) {
				return c.admin.ClearLoginLockout(ctx, &gatewayv1.ClearLoginLockoutRequest{ClientId: "alice"})
			},
			check: func(t *testing.T, _ *secCaller, res proto.Message) {
				t.Helper()
				if r := res.(*gatewayv1.ClearLoginLockoutResponse); r.GetClientId() != "alice" || r.GetLockedSources() != 0 {
					t.Errorf("ClearLoginLockout = %v, want alice with nothing locked", r)
				}
			},
		},
		// bank-a registers under its own name at the address it already
		// registered, so the cell changes nothing.
		gatewayv1connect.CoordinatorServiceRegisterBankProcedure: {
			want: []connect.Code{unauth, unauth, unauth, unauth, denied, denied, denied, denied, ok, denied, unauth, unauth},
			call: func(ctx context.Context, _ *testing.T, c *secCaller) (proto.Message, error) {
				return c.coord.RegisterBank(ctx, &gatewayv1.RegisterBankRequest{Name: "bank-a", Url: c.env.fx.bankURLs["bank-a"]})
			},
			check: func(t *testing.T, _ *secCaller, res proto.Message) {
				t.Helper()
				if res.(*gatewayv1.RegisterBankResponse).GetGatewayInstanceId() == "" {
					t.Error("RegisterBank returned no gateway instance id")
				}
			},
		},
		// The fixture's payment is dave -> alice, both at bank-a: bank-a is
		// its participant.
		gatewayv1connect.CoordinatorServiceGetTransactionOutcomeProcedure: {
			want: []connect.Code{unauth, unauth, unauth, unauth, denied, denied, denied, denied, ok, denied, unauth, unauth},
			call: func(ctx context.Context, _ *testing.T, c *secCaller) (proto.Message, error) {
				return c.coord.GetTransactionOutcome(ctx, &gatewayv1.GetTransactionOutcomeRequest{TransactionId: c.env.fx.received})
			},
			check: func(t *testing.T, _ *secCaller, res proto.Message) {
				t.Helper()
				if got := res.(*gatewayv1.GetTransactionOutcomeResponse).GetOutcome(); got != gatewayv1.TransactionOutcome_TRANSACTION_OUTCOME_COMMITTED {
					t.Errorf("outcome of a succeeded payment = %v, want COMMITTED", got)
				}
			},
		},
	}
}

// secGatewayProcedures returns every procedure of the gateway's services
// ("/remit.gateway.v1.Service/Method") in the linked descriptors, sorted.
func secGatewayProcedures(t *testing.T) []string {
	t.Helper()
	var procs []string
	protoregistry.GlobalFiles.RangeFilesByPackage("remit.gateway.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			for j := range sd.Methods().Len() {
				procs = append(procs, fmt.Sprintf("/%s/%s", sd.FullName(), sd.Methods().Get(j).Name()))
			}
		}
		return true
	})
	if len(procs) == 0 {
		t.Fatal("no remit.gateway.v1 services are linked into the test binary")
	}
	slices.Sort(procs)
	return procs
}

// TestSecurityMatrix runs the security matrix and the attacks around it
// against one real network.
func TestSecurityMatrix(t *testing.T) {
	procs := secGatewayProcedures(t)
	rows := secMatrix()
	maps.Copy(rows, secMatrixCustomers())
	for _, p := range procs {
		if _, ok := rows[p]; !ok {
			t.Errorf("procedure %s has no row in secMatrix: add the code every identity must get", p)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(rows)) {
		switch {
		case !slices.Contains(procs, p):
			t.Errorf("secMatrix has a row for %s, which the gateway's services do not define", p)
		case len(rows[p].want) != len(secIdentityNames):
			t.Errorf("secMatrix row %s has %d codes, want one per identity (%d)", p, len(rows[p].want), len(secIdentityNames))
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	e := secSetup(t)

	t.Run("matrix", func(t *testing.T) {
		t.Logf("%d procedures x %d identities = %d cells, over %d protocols",
			len(procs), len(secIdentityNames), len(procs)*len(secIdentityNames), len(secProtocols))
		for _, p := range secProtocols {
			t.Run(p.name, func(t *testing.T) {
				for _, proc := range procs {
					row := rows[proc]
					for i, name := range secIdentityNames {
						c := e.caller(t, e.ids[name], p.opts)
						t.Run(strings.TrimPrefix(proc, "/remit.gateway.v1.")+"/"+name, func(t *testing.T) {
							secRunCell(t, c, row, row.want[i])
						})
					}
				}
			})
		}
	})

	t.Run("plaintext is refused", e.plaintext)
	t.Run("TLS below 1.3 is refused", e.oldTLS)
	t.Run("the payer is always the caller", e.payerIsCaller)
	t.Run("ownership", e.ownership)
	t.Run("a bank acts only under its own name", e.bankName)
	t.Run("denials reveal nothing", e.noExistenceLeak)
}

// secRunCell makes one call of the matrix and checks its code; denials must
// carry the ErrorInfo reason of their code and must not echo the target.
func secRunCell(t *testing.T, c *secCaller, row secRow, want connect.Code) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), secCallTimeout)
	defer cancel()
	res, err := row.call(ctx, t, c)
	got := secOK
	if err != nil {
		got = connect.CodeOf(err)
	}
	if got != want {
		t.Fatalf("%s: code %s (%v), want %s", c.id.name, secCodeName(got), err, secCodeName(want))
	}
	if err == nil {
		if row.check != nil {
			row.check(t, c, res)
		}
		return
	}
	secCheckDenial(t, err, c.env.fx)
}

// secCheckDenial checks that an unauthenticated or permission_denied error
// has the matching ErrorInfo and that its message names neither the target
// account nor the fixture's payments.
func secCheckDenial(t *testing.T, err error, fx secFixture) {
	t.Helper()
	reason := map[connect.Code]string{
		connect.CodeUnauthenticated:  "UNAUTHENTICATED",
		connect.CodePermissionDenied: "PERMISSION_DENIED",
		connect.CodeNotFound:         "NOT_FOUND",
	}[connect.CodeOf(err)]
	if reason == "" {
		return
	}
	info := rpcerr.Info(err)
	if info.GetReason() != reason || info.GetDomain() != rpcerr.Domain {
		t.Errorf("ErrorInfo of %v = %v, want reason %s in domain %s", err, info, reason, rpcerr.Domain)
	}
	if connect.CodeOf(err) == connect.CodeNotFound {
		return // it echoes the id the caller sent, which reveals nothing
	}
	var cerr *connect.Error
	if !errors.As(err, &cerr) {
		t.Fatalf("%v is not a Connect error", err)
	}
	for _, secret := range []string{"alice", "dave", fx.received, fx.foreign} {
		if strings.Contains(cerr.Message(), secret) {
			t.Errorf("denial %q reveals %q", cerr.Message(), secret)
		}
	}
}

func secCodeName(c connect.Code) string {
	if c == secOK {
		return "ok"
	}
	return c.String()
}

// secRetry repeats call while the gateway answers that it could not reach a
// bank or that the same request is in flight: a bank's health check that
// times out under load briefly makes the gateway refuse calls touching it,
// which is not what these tests are about.
func secRetry[T any](ctx context.Context, call func(context.Context) (T, error)) (T, error) {
	for {
		res, err := call(ctx)
		if err == nil || ctx.Err() != nil {
			return res, err
		}
		switch connect.CodeOf(err) {
		case connect.CodeUnavailable, connect.CodeAborted:
		default:
			return res, err
		}
		select {
		case <-ctx.Done():
			return res, err
		case <-time.After(gatewaytest.PollInterval):
		}
	}
}

func secInvolves(p *gatewayv1.Payment, account string) bool {
	return p.GetPayer().GetAccountId() == account || p.GetPayee().GetAccountId() == account
}

// secFixture is what the requests of the matrix name.
type secFixture struct {
	// received is a succeeded payment dave -> alice (both at bank-a): alice
	// received it, bob has nothing to do with it.
	received string
	// foreign is a succeeded payment carol (bank-c) -> bob (bank-b): bank-a is
	// not a participant.
	foreign string
	// bankURLs are the registered URLs of the banks.
	bankURLs map[string]string
}

// secIdentity is one kind of caller.
type secIdentity struct {
	name string
	// url is the gateway the identity calls.
	url string
	// tls carries the client certificate it presents, if any.
	tls *tls.Config
	// token is its bearer token, if any.
	token string
	// login is the user behind a valid token: the account it pays from, and
	// the user a fresh session is opened for when a call spends the token.
	login string
}

// secEnv is the network under attack and its callers.
type secEnv struct {
	n      *gatewaytest.Network
	layout *pki.Layout
	noCert *tls.Config
	fx     secFixture
	ids    map[string]*secIdentity
	// clients caches one HTTP client per certificate and token, keyed by
	// the config's address; confs keeps every config keyed so alive, so
	// that a freed config's address cannot be reused by another
	// certificate's and hand it the first one's client (and identity).
	clients map[string]*http.Client
	confs   []*tls.Config
}

// secSetup starts a network, adds an auditor, gets every identity its
// credentials and makes the fixture's payments.
func secSetup(t *testing.T) *secEnv {
	t.Helper()
	n := gatewaytest.Start(t, gatewaytest.Options{})
	secAddAuditor(t, n)

	e := &secEnv{n: n, layout: pki.NewLayout(filepath.Join(n.Dir, "certs")), clients: map[string]*http.Client{}}
	e.noCert = e.clientTLS(t, "")
	bankA, gatewayCert := e.clientTLS(t, "bank-a"), e.clientTLS(t, pki.GatewayName)
	main := n.Gateway.URL

	// Tokens live an hour on the network's gateway. The expired token comes
	// from a second gateway (same certificates and users, its own data)
	// whose tokens live a millisecond.
	expiring := secStartExpiringGateway(t, n, e.layout)
	t.Cleanup(e.close) // before the gateways stop: they wait for clients to hang up
	expired := e.login(t, expiring, "alice")
	gatewaytest.WaitFor(t, "alice's token to expire", func() error {
		c := gatewayv1connect.NewPaymentServiceClient(e.httpClient(e.noCert, expired), expiring)
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, err := c.ListPayments(ctx, &gatewayv1.ListPaymentsRequest{})
		if connect.CodeOf(err) != connect.CodeUnauthenticated {
			return fmt.Errorf("ListPayments with the token: %w", err)
		}
		return nil
	})

	revoked := e.login(t, main, "alice")
	logout := gatewayv1connect.NewAuthServiceClient(e.httpClient(e.noCert, revoked), main)
	if _, err := logout.Logout(secCtx(t), &gatewayv1.LogoutRequest{}); err != nil {
		t.Fatalf("Logout: %v", err)
	}

	alice := e.login(t, main, "alice")
	ids := []*secIdentity{
		{name: "no token", url: main, tls: e.noCert},
		{name: "expired token", url: expiring, tls: e.noCert, token: expired},
		{name: "revoked token", url: main, tls: e.noCert, token: revoked},
		{name: "forged token", url: main, tls: e.noCert, token: secForgedToken(t)},
		{name: "customer", url: main, tls: e.noCert, token: alice, login: "alice"},
		{name: "other customer", url: main, tls: e.noCert, token: e.login(t, main, "bob"), login: "bob"},
		{name: "auditor", url: main, tls: e.noCert, token: e.login(t, main, "auditor"), login: "auditor"},
		{name: "admin", url: main, tls: e.noCert, token: e.login(t, main, gatewaytest.AdminID), login: gatewaytest.AdminID},
		{name: "bank cert", url: main, tls: bankA},
		{name: "gateway cert", url: main, tls: gatewayCert},
		{name: "no client cert", url: main, tls: e.clientTLS(t, "")},
		{name: "cert and token", url: main, tls: bankA, token: alice},
	}
	e.ids = map[string]*secIdentity{}
	for _, id := range ids {
		e.ids[id.name] = id
	}
	for _, name := range secIdentityNames {
		if e.ids[name] == nil {
			t.Fatalf("identity %q is not set up", name)
		}
	}

	e.fx = secFixture{
		received: e.mustPay(t, "dave", "alice"),
		foreign:  e.mustPay(t, "carol", "bob"),
		bankURLs: e.bankURLs(t),
	}
	return e
}

// secAddAuditor adds a user with role auditor (the network has none) and
// restarts the gateway, which reads the users file at start.
func secAddAuditor(t *testing.T, n *gatewaytest.Network) {
	t.Helper()
	path := filepath.Join(n.Dir, "users.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var file map[string]any
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatalf("users file %s: %v", path, err)
	}
	users, ok := file["users"].([]any)
	if !ok {
		t.Fatalf("users file %s has no users list", path)
	}
	// Cheap parameters, as the network's other users: the tests are not
	// about password cost.
	hash, err := auth.HashPasswordParams(gatewaytest.Password, auth.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		t.Fatal(err)
	}
	file["users"] = append(users, map[string]any{"client_id": "auditor", "password_hash": hash, "roles": []string{"auditor"}})
	if data, err = json.MarshalIndent(file, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := n.Gateway.Restart(); err != nil {
		t.Fatal(err)
	}
	n.WaitReady(t)
}

// secStartExpiringGateway runs a second gateway on the network's
// certificates and users file, with its own data directory and tokens that
// expire after a millisecond, and returns its URL. It knows no banks: only
// its authentication is used.
func secStartExpiringGateway(t *testing.T, n *gatewaytest.Network, layout *pki.Layout) string {
	t.Helper()
	cert, key := layout.Server(pki.GatewayName)
	serverTLS, err := pki.ServerConfig(cert, key, layout.CA, tls.VerifyClientCertIfGiven)
	if err != nil {
		t.Fatal(err)
	}
	ccert, ckey := layout.Client(pki.GatewayName)
	bankTLS, err := pki.ClientConfig(layout.CA, ccert, ckey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- gateway.Run(ctx, gateway.Config{
			Listener:  ln,
			ServerTLS: serverTLS,
			BankTLS:   bankTLS,
			DataDir:   t.TempDir(),
			UsersFile: filepath.Join(n.Dir, "users.json"),
			Logger:    slog.New(slog.NewTextHandler(n.Log, nil)).With("process", "expiring-gateway"),
			TokenTTL:  time.Millisecond,
			RateLimit: 1e9,
			// The matrix's Register cells of the expired token come here.
			RegisterRate: rate.Inf,
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("expiring gateway: %v", err)
			}
		case <-time.After(gatewaytest.WaitTimeout):
			t.Error("the expiring gateway did not stop")
		}
	})
	return "https://" + ln.Addr().String()
}

// secForgedToken is a token of the right shape that no gateway issued.
func secForgedToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return auth.TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

func secCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), secCallTimeout)
	t.Cleanup(cancel)
	return ctx
}

// clientTLS is a TLS client config trusting the network's CA and presenting
// the client certificate of principal ("" for none).
func (e *secEnv) clientTLS(t *testing.T, principal string) *tls.Config {
	t.Helper()
	var cert, key string
	if principal != "" {
		cert, key = e.layout.Client(principal)
	}
	conf, err := pki.ClientConfig(e.layout.CA, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return conf
}

// httpClient returns the HTTP/2 client for a TLS config and a bearer token
// ("" for none), one per pair, closed when the test ends.
func (e *secEnv) httpClient(conf *tls.Config, token string) *http.Client {
	key := fmt.Sprintf("%p|%s", conf, token)
	if c, ok := e.clients[key]; ok {
		return c
	}
	c := serve.NewHTTP2Client(conf)
	if token != "" {
		c = &http.Client{Transport: secBearer{base: c.Transport, token: token}}
	}
	e.clients[key] = c
	e.confs = append(e.confs, conf)
	return c
}

// close closes the idle connections of every client.
func (e *secEnv) close() {
	for _, c := range e.clients {
		c.CloseIdleConnections()
	}
}

type secBearer struct {
	base  http.RoundTripper
	token string
}

func (b secBearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

// login logs clientID in at the gateway url (retrying while it starts) and
// returns the token.
func (e *secEnv) login(t *testing.T, url, clientID string) string {
	t.Helper()
	c := gatewayv1connect.NewAuthServiceClient(e.httpClient(e.noCert, ""), url)
	var token string
	gatewaytest.WaitFor(t, "login of "+clientID+" at "+url, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		res, err := c.Login(ctx, &gatewayv1.LoginRequest{ClientId: clientID, Password: gatewaytest.Password})
		token = res.GetAccessToken()
		return err
	})
	return token
}

// as returns a caller with a fresh session of clientID at the network's
// gateway, over Connect.
func (e *secEnv) as(t *testing.T, clientID string) *secCaller {
	t.Helper()
	id := &secIdentity{name: clientID, url: e.n.Gateway.URL, tls: e.noCert, token: e.login(t, e.n.Gateway.URL, clientID), login: clientID}
	return e.caller(t, id, nil)
}

// asCert returns a caller presenting principal's client certificate, over
// Connect.
func (e *secEnv) asCert(t *testing.T, principal string) *secCaller {
	t.Helper()
	return e.caller(t, &secIdentity{name: principal + " cert", url: e.n.Gateway.URL, tls: e.clientTLS(t, principal)}, nil)
}

// mustPay makes a payment of 100 from payer to payee and returns its id.
func (e *secEnv) mustPay(t *testing.T, payer, payee string) string {
	t.Helper()
	c := e.as(t, payer)
	req := &gatewayv1.MakePaymentRequest{
		TransactionId: uuid.NewString(), Payee: gatewaytest.Ref(payee), Amount: 100,
		Currency: gatewaytest.Currency, Description: "security fixture",
	}
	res, err := secRetry(secCtx(t), func(ctx context.Context) (*gatewayv1.MakePaymentResponse, error) {
		return c.pay.MakePayment(ctx, req)
	})
	if err != nil || res.GetPayment().GetStatus() != gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED {
		t.Fatalf("payment %s -> %s: %v, %v", payer, payee, res, err)
	}
	return res.GetPayment().GetTransactionId()
}

// bankURLs returns the registered URL of every bank.
func (e *secEnv) bankURLs(t *testing.T) map[string]string {
	t.Helper()
	res, err := e.as(t, gatewaytest.AdminID).admin.ListBanks(secCtx(t), &gatewayv1.ListBanksRequest{})
	if err != nil {
		t.Fatal(err)
	}
	urls := map[string]string{}
	for _, b := range res.GetBanks() {
		urls[b.GetName()] = b.GetUrl()
	}
	return urls
}

// bobBalance returns bob's booked and available balance, read as admin: the
// account the smuggling tests try to move money from.
func (e *secEnv) bobBalance(t *testing.T, admin *secCaller) [2]int64 {
	t.Helper()
	const account = "bob"
	res, err := secRetry(secCtx(t), func(ctx context.Context) (*gatewayv1.CheckBalanceResponse, error) {
		return admin.pay.CheckBalance(ctx, &gatewayv1.CheckBalanceRequest{Account: gatewaytest.Ref(account)})
	})
	if err != nil {
		t.Fatalf("balance of %s: %v", account, err)
	}
	return [2]int64{res.GetBalance(), res.GetAvailable()}
}

// secCaller is one identity's clients over one protocol.
type secCaller struct {
	id    *secIdentity
	env   *secEnv
	opts  []connect.ClientOption
	auth  gatewayv1connect.AuthServiceClient
	pay   gatewayv1connect.PaymentServiceClient
	admin gatewayv1connect.AdminServiceClient
	coord gatewayv1connect.CoordinatorServiceClient
}

func (e *secEnv) caller(t *testing.T, id *secIdentity, opts []connect.ClientOption) *secCaller {
	t.Helper()
	hc := e.httpClient(id.tls, id.token)
	return &secCaller{
		id: id, env: e, opts: opts,
		auth:  gatewayv1connect.NewAuthServiceClient(hc, id.url, opts...),
		pay:   gatewayv1connect.NewPaymentServiceClient(hc, id.url, opts...),
		admin: gatewayv1connect.NewAdminServiceClient(hc, id.url, opts...),
		coord: gatewayv1connect.NewCoordinatorServiceClient(hc, id.url, opts...),
	}
}

// fresh returns c with a new session of the same user, for calls that spend
// their session (Logout); callers without a valid token are returned as
// they are.
func (c *secCaller) fresh(t *testing.T) *secCaller {
	t.Helper()
	if c.id.login == "" {
		return c
	}
	id := *c.id
	id.token = c.env.login(t, id.url, id.login)
	return c.env.caller(t, &id, c.opts)
}

// plaintext sends a valid Login in plaintext to the gateway's port, as
// HTTP/1.1 and as HTTP/2 with prior knowledge (h2c) in every protocol: no
// attempt may get a token, or any answer of the API.
func (e *secEnv) plaintext(t *testing.T) {
	addr := strings.TrimPrefix(e.n.Gateway.URL, "https://")
	body := fmt.Sprintf(`{"clientId":"alice","password":%q}`, gatewaytest.Password)

	h1 := &http.Transport{}
	t.Cleanup(h1.CloseIdleConnections)
	req, err := http.NewRequestWithContext(secCtx(t), http.MethodPost, "http://"+addr+gatewayv1connect.AuthServiceLoginProcedure, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if res, err := (&http.Client{Transport: h1}).Do(req); err == nil {
		data, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		_ = res.Body.Close() // fully read above
		// Go's TLS server answers a plaintext request with a canned 400
		// before closing the connection; nothing reaches the handlers.
		if res.StatusCode == http.StatusOK || bytes.Contains(data, []byte("accessToken")) || bytes.Contains(data, []byte(auth.TokenPrefix)) {
			t.Errorf("plaintext HTTP/1.1 Login answered %s: %s", res.Status, data)
		}
		t.Logf("plaintext HTTP/1.1: %s %q", res.Status, data)
	} else {
		t.Logf("plaintext HTTP/1.1: %v", err)
	}

	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	h2c := &http.Transport{Protocols: &protocols}
	t.Cleanup(h2c.CloseIdleConnections)
	for _, p := range secProtocols {
		c := gatewayv1connect.NewAuthServiceClient(&http.Client{Transport: h2c}, "http://"+addr, p.opts...)
		res, err := c.Login(secCtx(t), &gatewayv1.LoginRequest{ClientId: "alice", Password: gatewaytest.Password})
		if err == nil || res.GetAccessToken() != "" {
			t.Errorf("%s over h2c: Login = %v, %v; want no answer", p.name, res, err)
		}
		t.Logf("%s over h2c: %v", p.name, err)
	}
}

// oldTLS shows that a client limited to TLS 1.2 cannot connect.
func (e *secEnv) oldTLS(t *testing.T) {
	conf := e.noCert.Clone()
	conf.MinVersion, conf.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: conf}
	conn, err := d.DialContext(secCtx(t), "tcp", strings.TrimPrefix(e.n.Gateway.URL, "https://"))
	if err == nil {
		_ = conn.Close() // the handshake succeeding is the failure reported
		t.Fatal("a TLS 1.2 client completed a handshake with the gateway")
	}
}

// payerIsCaller sends alice's payment with a payer and a payer client id
// smuggled into the JSON body: they are no fields of the request, so the
// payment is alice's and bob's money does not move.
func (e *secEnv) payerIsCaller(t *testing.T) {
	admin := e.as(t, gatewaytest.AdminID)
	before := e.bobBalance(t, admin)

	alice := e.ids["customer"]
	id := uuid.NewString()
	body := fmt.Sprintf(`{"transactionId":%q,"payee":{"bank":"bank-c","accountId":"carol"},"amount":"1","currency":"usd",`+
		`"payer":{"bank":"bank-b","accountId":"bob"},"payerClientId":"bob","clientId":"bob"}`, id)
	var res *gatewayv1.MakePaymentResponse
	gatewaytest.WaitFor(t, "the smuggled payment", func() error {
		req, err := http.NewRequestWithContext(secCtx(t), http.MethodPost,
			e.n.Gateway.URL+gatewayv1connect.PaymentServiceMakePaymentProcedure, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		hres, err := e.httpClient(alice.tls, alice.token).Do(req)
		if err != nil {
			return err
		}
		defer hres.Body.Close() //nolint:errcheck // read to the end below; the read's error is the one that matters
		data, err := io.ReadAll(hres.Body)
		if err != nil {
			return err
		}
		switch {
		case hres.StatusCode == http.StatusServiceUnavailable || hres.StatusCode == http.StatusConflict:
			return fmt.Errorf("HTTP %d: %s", hres.StatusCode, data) // a bank blinked: retry the same id
		case hres.StatusCode != http.StatusOK:
			// Refusing the unknown fields would be fine too.
			t.Logf("the smuggled fields were refused: HTTP %d: %s", hres.StatusCode, data)
			return nil
		}
		res = &gatewayv1.MakePaymentResponse{}
		return protojson.Unmarshal(data, res)
	})
	if res != nil {
		p := res.GetPayment()
		if !proto.Equal(p.GetPayer(), gatewaytest.Ref("alice")) || p.GetPayerClientId() != "alice" {
			t.Errorf("alice's payment with a smuggled payer = %v, want it paid from alice's account", p)
		}
	}
	if after := e.bobBalance(t, admin); after != before {
		t.Errorf("bob's balance went from %v to %v on alice's payment", before, after)
	}
}

// ownership checks the ownership rules on top of the roles: payer and
// payee see a payment, only the payee acknowledges it, a customer reads only
// their own account.
func (e *secEnv) ownership(t *testing.T) {
	bobToAlice := e.mustPay(t, "bob", "alice")
	alice, bob, carol, dave := e.as(t, "alice"), e.as(t, "bob"), e.as(t, "carol"), e.as(t, "dave")

	tests := []struct {
		name string
		call func(ctx context.Context) error
		want connect.Code
	}{
		{"the payer cannot acknowledge", func(ctx context.Context) error {
			_, err := bob.pay.AcknowledgePayment(ctx, &gatewayv1.AcknowledgePaymentRequest{TransactionId: bobToAlice})
			return err
		}, connect.CodePermissionDenied},
		{"the payee acknowledges", func(ctx context.Context) error {
			_, err := alice.pay.AcknowledgePayment(ctx, &gatewayv1.AcknowledgePaymentRequest{TransactionId: bobToAlice})
			return err
		}, secOK},
		{"the payer reads", func(ctx context.Context) error {
			_, err := bob.pay.GetPayment(ctx, &gatewayv1.GetPaymentRequest{TransactionId: bobToAlice})
			return err
		}, secOK},
		{"a third customer does not see it", func(ctx context.Context) error {
			_, err := carol.pay.GetPayment(ctx, &gatewayv1.GetPaymentRequest{TransactionId: bobToAlice})
			return err
		}, connect.CodeNotFound},
		{"a customer of the same bank cannot read the balance", func(ctx context.Context) error {
			_, err := dave.pay.CheckBalance(ctx, &gatewayv1.CheckBalanceRequest{Account: gatewaytest.Ref("alice")})
			return err
		}, connect.CodePermissionDenied},
		{"a customer of the same bank cannot watch the account", func(ctx context.Context) error {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			stream, err := dave.pay.WatchPayments(ctx, &gatewayv1.WatchPaymentsRequest{Account: gatewaytest.Ref("alice")})
			if err != nil {
				return err
			}
			defer func() { cancel(); _ = stream.Close() }() // canceled first: the close only releases it
			if stream.Receive() {
				return nil
			}
			return stream.Err()
		}, connect.CodePermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(secCtx(t))
			got := secOK
			if err != nil {
				got = connect.CodeOf(err)
			}
			if got != tt.want {
				t.Fatalf("code %s (%v), want %s", secCodeName(got), err, secCodeName(tt.want))
			}
			if err != nil {
				secCheckDenial(t, err, e.fx)
			}
		})
	}

	// Transaction ids are idempotency keys: a retry with the same id and
	// parameters returns the stored payment. Another customer sending the
	// same id, even with the very same parameters, gets neither the payment
	// nor a second one.
	t.Run("another customer replays a transaction id", func(t *testing.T) {
		admin := e.as(t, gatewaytest.AdminID)
		before := e.bobBalance(t, admin)
		res, err := bob.pay.MakePayment(secCtx(t), &gatewayv1.MakePaymentRequest{
			TransactionId: e.fx.received, Payee: gatewaytest.Ref("alice"), Amount: 100,
			Currency: gatewaytest.Currency, Description: "security fixture",
		})
		if connect.CodeOf(err) != connect.CodeInvalidArgument || rpcerr.Reason(err) != "IDEMPOTENCY_KEY_REUSED" {
			t.Fatalf("MakePayment with dave's transaction id = %v, %v; want invalid_argument IDEMPOTENCY_KEY_REUSED", res, err)
		}
		for _, s := range []string{"dave", "alice", "100"} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("the refusal %q reveals %q", err, s)
			}
		}
		if after := e.bobBalance(t, admin); after != before {
			t.Errorf("bob's balance went from %v to %v", before, after)
		}
	})

	// Without an account, lists and watches default to the caller's own.
	t.Run("lists default to the caller's account", func(t *testing.T) {
		for _, c := range []*secCaller{alice, bob, carol, dave} {
			res, err := c.pay.ListPayments(secCtx(t), &gatewayv1.ListPaymentsRequest{PageSize: 100})
			if err != nil {
				t.Fatalf("%s: %v", c.id.login, err)
			}
			for _, p := range res.GetPayments() {
				if !secInvolves(p, c.id.login) {
					t.Errorf("%s's list shows %v", c.id.login, p)
				}
			}
		}
	})
	t.Run("watches default to the caller's account", func(t *testing.T) {
		ctx, cancel := context.WithCancel(secCtx(t))
		defer cancel()
		stream, err := carol.pay.WatchPayments(ctx, &gatewayv1.WatchPaymentsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); _ = stream.Close() }() // canceled first: the close only releases it
		if !stream.Receive() {
			t.Fatalf("carol's watch ended: %v", stream.Err())
		}
		if e := stream.Msg(); !proto.Equal(e.GetAccount(), gatewaytest.Ref("carol")) {
			t.Errorf("carol's watch sent %v", e)
		}
	})
}

// bankName checks that a bank's certificate speaks only for that bank.
func (e *secEnv) bankName(t *testing.T) {
	bankA, bankB, gw := e.asCert(t, "bank-a"), e.asCert(t, "bank-b"), e.asCert(t, pki.GatewayName)
	outcome := func(c *secCaller, id string) func(context.Context) (gatewayv1.TransactionOutcome, error) {
		return func(ctx context.Context) (gatewayv1.TransactionOutcome, error) {
			res, err := c.coord.GetTransactionOutcome(ctx, &gatewayv1.GetTransactionOutcomeRequest{TransactionId: id})
			return res.GetOutcome(), err
		}
	}
	register := func(c *secCaller, name, url string) func(context.Context) (gatewayv1.TransactionOutcome, error) {
		return func(ctx context.Context) (gatewayv1.TransactionOutcome, error) {
			_, err := c.coord.RegisterBank(ctx, &gatewayv1.RegisterBankRequest{Name: name, Url: url})
			return 0, err
		}
	}
	tests := []struct {
		name    string
		call    func(context.Context) (gatewayv1.TransactionOutcome, error)
		want    connect.Code
		outcome gatewayv1.TransactionOutcome
	}{
		{"bank-a registers as bank-b", register(bankA, "bank-b", "https://127.0.0.1:1"), connect.CodePermissionDenied, 0},
		{"the gateway's certificate registers bank-a", register(gw, "bank-a", "https://127.0.0.1:1"), connect.CodePermissionDenied, 0},
		{"bank-a asks about a payment between bank-c and bank-b", outcome(bankA, e.fx.foreign), connect.CodePermissionDenied, 0},
		{"bank-b asks about the same payment", outcome(bankB, e.fx.foreign), secOK, gatewayv1.TransactionOutcome_TRANSACTION_OUTCOME_COMMITTED},
		// Presumed abort: the gateway logs every payment before any bank
		// prepares it, so an id it does not know was never committed.
		{"bank-a asks about an unknown id", outcome(bankA, uuid.NewString()), secOK, gatewayv1.TransactionOutcome_TRANSACTION_OUTCOME_ABORTED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.call(secCtx(t))
			code := secOK
			if err != nil {
				code = connect.CodeOf(err)
			}
			if code != tt.want || got != tt.outcome {
				t.Fatalf("= %v, %s (%v); want %v, %s", got, secCodeName(code), err, tt.outcome, secCodeName(tt.want))
			}
			if err != nil {
				secCheckDenial(t, err, e.fx)
			}
		})
	}
	if got := e.bankURLs(t); !maps.Equal(got, e.fx.bankURLs) {
		t.Errorf("registered banks changed from %v to %v", e.fx.bankURLs, got)
	}
}

// secUUID matches the ids a message may echo.
var secUUID = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)

// noExistenceLeak makes denied calls about targets that exist and about
// targets that do not: the answers must be the same, so that a caller
// cannot probe for other people's accounts and payments.
func (e *secEnv) noExistenceLeak(t *testing.T) {
	bob, auditor, alice := e.as(t, "bob"), e.as(t, "auditor"), e.as(t, "alice")
	anon := e.caller(t, e.ids["no token"], nil)
	revoked := e.caller(t, e.ids["revoked token"], nil)
	bankA := e.asCert(t, "bank-a")
	exists, missing := gatewaytest.Ref("alice"), &gatewayv1.AccountRef{Bank: "bank-a", AccountId: "nobody"}
	noBank := &gatewayv1.AccountRef{Bank: "bank-zz", AccountId: "nobody"}
	random := uuid.NewString()

	getPayment := func(c *secCaller) func(string) func(context.Context) error {
		return func(id string) func(context.Context) error {
			return func(ctx context.Context) error {
				_, err := c.pay.GetPayment(ctx, &gatewayv1.GetPaymentRequest{TransactionId: id})
				return err
			}
		}
	}
	checkBalance := func(c *secCaller) func(*gatewayv1.AccountRef) func(context.Context) error {
		return func(a *gatewayv1.AccountRef) func(context.Context) error {
			return func(ctx context.Context) error {
				_, err := c.pay.CheckBalance(ctx, &gatewayv1.CheckBalanceRequest{Account: a})
				return err
			}
		}
	}
	tests := []struct {
		name  string
		want  connect.Code
		calls []func(context.Context) error // about an existing target first
	}{
		{"other customer reads a payment", connect.CodeNotFound, []func(context.Context) error{
			getPayment(bob)(e.fx.received), getPayment(bob)(random),
		}},
		{"other customer acknowledges a payment", connect.CodeNotFound, []func(context.Context) error{
			func(ctx context.Context) error {
				_, err := bob.pay.AcknowledgePayment(ctx, &gatewayv1.AcknowledgePaymentRequest{TransactionId: e.fx.received})
				return err
			},
			func(ctx context.Context) error {
				_, err := bob.pay.AcknowledgePayment(ctx, &gatewayv1.AcknowledgePaymentRequest{TransactionId: random})
				return err
			},
		}},
		{"other customer checks a balance", connect.CodePermissionDenied, []func(context.Context) error{
			checkBalance(bob)(exists), checkBalance(bob)(missing), checkBalance(bob)(noBank),
		}},
		{"other customer lists an account", connect.CodePermissionDenied, []func(context.Context) error{
			func(ctx context.Context) error {
				_, err := bob.pay.ListPayments(ctx, &gatewayv1.ListPaymentsRequest{Account: exists})
				return err
			},
			func(ctx context.Context) error {
				_, err := bob.pay.ListPayments(ctx, &gatewayv1.ListPaymentsRequest{Account: missing})
				return err
			},
		}},
		{"auditor deposits", connect.CodePermissionDenied, []func(context.Context) error{
			func(ctx context.Context) error {
				_, err := auditor.admin.UpdateBalance(ctx, &gatewayv1.UpdateBalanceRequest{TransactionId: uuid.NewString(), Account: exists, Direction: gatewayv1.Direction_DIRECTION_CREDIT, Amount: 1, Currency: "usd"})
				return err
			},
			func(ctx context.Context) error {
				_, err := auditor.admin.UpdateBalance(ctx, &gatewayv1.UpdateBalanceRequest{TransactionId: uuid.NewString(), Account: missing, Direction: gatewayv1.Direction_DIRECTION_CREDIT, Amount: 1, Currency: "usd"})
				return err
			},
		}},
		{"customer asks the coordinator", connect.CodePermissionDenied, []func(context.Context) error{
			func(ctx context.Context) error {
				_, err := alice.coord.GetTransactionOutcome(ctx, &gatewayv1.GetTransactionOutcomeRequest{TransactionId: e.fx.received})
				return err
			},
			func(ctx context.Context) error {
				_, err := alice.coord.GetTransactionOutcome(ctx, &gatewayv1.GetTransactionOutcomeRequest{TransactionId: random})
				return err
			},
		}},
		{"bank registers under another name", connect.CodePermissionDenied, []func(context.Context) error{
			func(ctx context.Context) error {
				_, err := bankA.coord.RegisterBank(ctx, &gatewayv1.RegisterBankRequest{Name: "bank-b", Url: "https://127.0.0.1:1"})
				return err
			},
			func(ctx context.Context) error {
				_, err := bankA.coord.RegisterBank(ctx, &gatewayv1.RegisterBankRequest{Name: "bank-zz", Url: "https://127.0.0.1:1"})
				return err
			},
		}},
		{"anonymous reads a payment", connect.CodeUnauthenticated, []func(context.Context) error{
			getPayment(anon)(e.fx.received), getPayment(anon)(random),
		}},
		{"revoked token checks a balance", connect.CodeUnauthenticated, []func(context.Context) error{
			checkBalance(revoked)(exists), checkBalance(revoked)(missing), checkBalance(revoked)(noBank),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var first string
			for i, call := range tt.calls {
				err := call(secCtx(t))
				if connect.CodeOf(err) != tt.want {
					t.Fatalf("call %d: %v, want %s", i, err, tt.want)
				}
				secCheckDenial(t, err, e.fx)
				got := secErrorShape(err)
				if i == 0 {
					first = got
				} else if got != first {
					t.Errorf("the answers differ, so they tell whether the target exists:\n existing: %s\n missing:  %s", first, got)
				}
			}
		})
	}
}

// secErrorShape is everything a client sees of err, with echoed ids
// replaced.
func secErrorShape(err error) string {
	var cerr *connect.Error
	if !errors.As(err, &cerr) {
		return err.Error()
	}
	info := rpcerr.Info(err)
	return secUUID.ReplaceAllString(fmt.Sprintf("code=%s message=%q reason=%s domain=%s metadata=%v",
		cerr.Code(), cerr.Message(), info.GetReason(), info.GetDomain(), info.GetMetadata()), "<id>")
}
