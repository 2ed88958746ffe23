// Package clienttest provides a fake Remit gateway for testing code built on
// package client: a real HTTPS server (HTTP/2, TLS 1.3, certificates from a
// fresh dev CA) that implements AuthService, PaymentService, AdminService
// and gRPC health with the gateway's contract — idempotency by transaction
// id (refund id, request id), declines as failed_precondition, AIP-193
// errors, users and sessions changed at run time, accounts opened and
// closed, refunds — over an in-memory ledger, plus hooks to inject failures
// and counters to assert on what was sent.
//
// It is a stand-in for unit tests only; the real gateway and banks are
// exercised by the end-to-end tests.
package clienttest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/remitpay/remit/client"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
	"github.com/remitpay/remit/internal/logging"
	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/internal/rpcerr"
)

// Users of every fake gateway: two customers with accounts at two banks,
// and an admin without an account. Passwords are the client id + "-pw".
var (
	Alice = client.AccountRef{Bank: "bank-a", ID: "alice"}
	Bob   = client.AccountRef{Bank: "bank-b", ID: "bob"}
)

// InitialBalance is each customer's starting balance, in usd cents.
const InitialBalance = 100_00

// Hooks inject failures into MakePayment, UpdateBalance, RefundPayment (by
// refund id) and OpenAccount (by request id). call is the 1-based number of
// the request with this transaction id.
type Hooks struct {
	// Before runs before anything is recorded; a non-nil error is returned
	// as the answer and nothing happens (like BANK_UNAVAILABLE).
	Before func(call int, txID string) error
	// After runs once the outcome is stored (money moved or declined); a
	// non-nil error replaces the answer, as if the answer were lost.
	After func(call int, txID string) error
	// WatchBreakAfter, if positive, makes every watch stream fail with
	// unavailable after sending that many events.
	WatchBreakAfter int
}

// Call is one request the gateway received.
type Call struct {
	// Procedure is the Connect procedure, e.g. PaymentServiceMakePaymentProcedure.
	Procedure string
	// TransactionID is the request's transaction id, if it has one.
	TransactionID string
	// RetryAttempt is the Remit-Retry-Attempt header (0 if absent).
	RetryAttempt int
	// Token is the bearer token sent, if any.
	Token string
}

type user struct {
	password string
	account  client.AccountRef
	roles    []gatewayv1.Role
	disabled bool
	source   gatewayv1.UserSource
	created  time.Time
	updated  time.Time
	pwSet    time.Time
}

// session is what the gateway keeps about a token besides its client id.
type session struct {
	id      string
	created time.Time
	expire  time.Time
}

type txn struct {
	req     proto.Message // the request as first received, to detect reuse
	owner   string
	payment *gatewayv1.Payment
}

// Gateway is a running fake gateway. Its methods are safe for concurrent
// use.
type Gateway struct {
	// URL is the base URL (https://127.0.0.1:port).
	URL string
	// CAFile is the CA certificate that signed the server certificate.
	CAFile string

	srv     *httptest.Server
	checker *grpchealth.StaticChecker

	mu         sync.Mutex
	down       bool
	hooks      Hooks
	users      map[string]user
	tokens     map[string]string  // token -> client id
	sessions   map[string]session // token -> its session
	balances   map[client.AccountRef]int64
	accounts   map[client.AccountRef]*account
	codes      map[client.AccountRef]string // enrollment codes, see SetEnrollmentCode
	openings   map[string]*opening          // OpenAccount requests by request id
	txns       map[string]*txn
	attempts   map[string]int // requests per transaction id
	order      []string       // payment ids, oldest first
	events     []*gatewayv1.WatchPaymentsResponse
	eventsCh   chan struct{} // closed and replaced when an event is added
	calls      []Call
	watchAfter []int64
	lockouts   map[string]int // client id -> sources locked out, see SetLockout
}

// SetLockout makes clientID look locked out at n sources to
// ClearLoginLockout, which clears it.
func (g *Gateway) SetLockout(clientID string, n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.lockouts == nil {
		g.lockouts = map[string]int{}
	}
	g.lockouts[clientID] = n
}

// Lockout returns the sources clientID looks locked out at.
func (g *Gateway) Lockout(clientID string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lockouts[clientID]
}

// New starts a fake gateway, stopped when the test ends.
func New(tb testing.TB) *Gateway {
	tb.Helper()
	l, err := pki.Generate(tb.TempDir(), pki.Options{Banks: []string{"bank-a", "bank-b"}})
	if err != nil {
		tb.Fatal(err)
	}
	cert, key := l.Server("gateway")
	serverTLS, err := pki.ServerConfig(cert, key, "", tls.NoClientCert)
	if err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	fileUser := func(password string, account client.AccountRef, role gatewayv1.Role) user {
		return user{password: password, account: account, roles: []gatewayv1.Role{role},
			source: gatewayv1.UserSource_USER_SOURCE_FILE, created: start, updated: start, pwSet: start}
	}
	g := &Gateway{
		CAFile: l.CA,
		users: map[string]user{
			"alice":   fileUser("alice-pw", Alice, gatewayv1.Role_ROLE_CUSTOMER),
			"bob":     fileUser("bob-pw", Bob, gatewayv1.Role_ROLE_CUSTOMER),
			"admin":   fileUser("admin-pw", client.AccountRef{}, gatewayv1.Role_ROLE_ADMIN),
			"auditor": fileUser("auditor-pw", client.AccountRef{}, gatewayv1.Role_ROLE_AUDITOR),
		},
		tokens:   map[string]string{},
		sessions: map[string]session{},
		balances: map[client.AccountRef]int64{Alice: InitialBalance, Bob: InitialBalance},
		accounts: map[client.AccountRef]*account{
			Alice: {owner: "alice", currency: "usd", opened: start},
			Bob:   {owner: "bob", currency: "usd", opened: start},
		},
		codes:    map[client.AccountRef]string{},
		openings: map[string]*opening{},
		txns:     map[string]*txn{},
		attempts: map[string]int{},
		eventsCh: make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.Handle(gatewayv1connect.NewAuthServiceHandler(authService{g: g}))
	mux.Handle(gatewayv1connect.NewPaymentServiceHandler(paymentService{g: g}))
	mux.Handle(gatewayv1connect.NewAdminServiceHandler(adminService{g: g}))
	g.checker = grpchealth.NewStaticChecker(gatewayv1connect.AuthServiceName,
		gatewayv1connect.PaymentServiceName, gatewayv1connect.AdminServiceName)
	mux.Handle(grpchealth.NewHandler(g.checker))

	g.srv = httptest.NewUnstartedServer(g.middleware(mux))
	g.srv.EnableHTTP2 = true
	g.srv.TLS = serverTLS
	g.srv.StartTLS()
	g.URL = g.srv.URL
	tb.Cleanup(g.srv.Close)
	return g
}

// Config returns a client configuration for this gateway, without a token.
func (g *Gateway) Config() client.Config {
	return client.Config{GatewayURL: g.URL, CAFile: g.CAFile}
}

// Token issues a token for clientID without a Login call.
func (g *Gateway) Token(clientID string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.issueLocked(clientID)
}

func (g *Gateway) issueLocked(clientID string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	tok := "tok-" + hex.EncodeToString(b)
	g.tokens[tok] = clientID
	now := time.Now()
	g.sessions[tok] = session{id: "ses-" + hex.EncodeToString(b[:6]), created: now, expire: now.Add(time.Hour)}
	return tok
}

// RevokeTokens makes every token issued so far invalid, as if they expired.
func (g *Gateway) RevokeTokens() {
	g.mu.Lock()
	defer g.mu.Unlock()
	clear(g.tokens)
	clear(g.sessions)
	g.wakeLocked()
}

// SetHooks replaces the failure hooks.
func (g *Gateway) SetHooks(h Hooks) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hooks = h
}

// SetDown makes every request fail with HTTP 503 and no Remit error (down
// is true), as a dead gateway behind a proxy looks, or serves again.
func (g *Gateway) SetDown(down bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.down = down
}

// SetServing sets the health status of the payment service.
func (g *Gateway) SetServing(serving bool) {
	st := grpchealth.StatusServing
	if !serving {
		st = grpchealth.StatusNotServing
	}
	g.checker.SetStatus(gatewayv1connect.PaymentServiceName, st)
}

// Calls returns every request received so far, in order.
func (g *Gateway) Calls() []Call {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.calls)
}

// PayCalls returns the transaction ids of every MakePayment request
// received, in order, repeats included.
func (g *Gateway) PayCalls() []string {
	var ids []string
	for _, c := range g.Calls() {
		if c.Procedure == gatewayv1connect.PaymentServiceMakePaymentProcedure {
			ids = append(ids, c.TransactionID)
		}
	}
	return ids
}

// WatchAfter returns the after_event_id of every watch stream opened.
func (g *Gateway) WatchAfter() []int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.watchAfter)
}

// Balance returns an account's balance.
func (g *Gateway) Balance(a client.AccountRef) int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.balances[a]
}

// Payment returns the stored payment with id, or nil.
func (g *Gateway) Payment(id string) *gatewayv1.Payment {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t := g.txns[id]; t != nil && t.payment != nil {
		return proto.CloneOf(t.payment)
	}
	return nil
}

type headerKey struct{}

// middleware keeps the request headers for the handlers and implements
// SetDown.
func (g *Gateway) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		down := g.down
		g.mu.Unlock()
		if down {
			http.Error(w, "service unavailable", http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), headerKey{}, r.Header)))
	})
}

// begin records a call and returns the caller's client id ("" if the
// token is missing or invalid). The caller holds g.mu.
func (g *Gateway) beginLocked(ctx context.Context, procedure, txID string) string {
	h, _ := ctx.Value(headerKey{}).(http.Header)
	c := Call{Procedure: procedure, TransactionID: txID}
	if h != nil {
		c.RetryAttempt, _ = strconv.Atoi(h.Get(logging.RetryAttemptHeader))
		c.Token, _ = strings.CutPrefix(h.Get("Authorization"), "Bearer ")
	}
	g.calls = append(g.calls, c)
	return g.tokens[c.Token]
}

func unauthenticated() error {
	return rpcerr.New(connect.CodeUnauthenticated, client.ReasonUnauthenticated, "missing, invalid or expired credentials: log in again", nil)
}

func permissionDenied(msg string) error {
	return rpcerr.New(connect.CodePermissionDenied, "PERMISSION_DENIED", msg, nil)
}

func declined(p *gatewayv1.Payment) error {
	r := p.GetFailureReason()
	return rpcerr.New(connect.CodeFailedPrecondition, rpcerr.EnumReason(r), client.FailureWords(r),
		map[string]string{"transaction_id": p.GetTransactionId()})
}

func (g *Gateway) addEventLocked(typ gatewayv1.PaymentEventType, p *gatewayv1.Payment, account client.AccountRef) {
	g.events = append(g.events, &gatewayv1.WatchPaymentsResponse{
		EventId: int64(len(g.events) + 1), Type: typ, Payment: proto.CloneOf(p),
		EventTime: timestamppb.New(time.Now()), Account: account.Proto(),
	})
	g.wakeLocked()
}

// wakeLocked wakes every watch stream: to send new events, or to end
// streams whose session was revoked.
func (g *Gateway) wakeLocked() {
	close(g.eventsCh)
	g.eventsCh = make(chan struct{})
}

// idempotent runs the shared idempotency logic of MakePayment,
// UpdateBalance and RefundPayment: hooks, replay and key reuse. apply
// computes a new outcome, or refuses the request with an error, in which
// case nothing is stored under txID.
func (g *Gateway) idempotent(ctx context.Context, procedure, txID string, req proto.Message, apply func(clientID string) (*gatewayv1.Payment, error)) (*gatewayv1.Payment, error) {
	g.mu.Lock()
	clientID := g.beginLocked(ctx, procedure, txID)
	if clientID == "" {
		g.mu.Unlock()
		return nil, unauthenticated()
	}
	g.attempts[txID]++
	call, hooks := g.attempts[txID], g.hooks
	g.mu.Unlock()

	if hooks.Before != nil {
		if err := hooks.Before(call, txID); err != nil {
			return nil, err
		}
	}
	g.mu.Lock()
	t := g.txns[txID]
	switch {
	case t == nil:
		p, err := apply(clientID)
		if err != nil {
			g.mu.Unlock()
			return nil, err
		}
		t = &txn{req: proto.Clone(req), owner: clientID, payment: p}
		g.txns[txID] = t
		g.order = append(g.order, txID)
	case t.owner != clientID || !proto.Equal(t.req, req):
		g.mu.Unlock()
		return nil, rpcerr.New(connect.CodeInvalidArgument, client.ReasonIdempotencyKeyReused,
			"this transaction id was already used for a different request; generate a new transaction id", nil)
	}
	p := proto.CloneOf(t.payment)
	g.mu.Unlock()

	if hooks.After != nil {
		if err := hooks.After(call, txID); err != nil {
			return nil, err
		}
	}
	if p.GetStatus() == gatewayv1.PaymentStatus_PAYMENT_STATUS_FAILED {
		return nil, declined(p)
	}
	return p, nil
}

type authService struct {
	g *Gateway
}

func (s authService) Login(ctx context.Context, req *gatewayv1.LoginRequest) (*gatewayv1.LoginResponse, error) {
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	g.beginLocked(ctx, gatewayv1connect.AuthServiceLoginProcedure, "")
	u, ok := g.users[req.GetClientId()]
	if !ok || u.password != req.GetPassword() || u.disabled {
		return nil, rpcerr.New(connect.CodeUnauthenticated, "INVALID_CREDENTIALS", "client id or password is wrong", nil)
	}
	c := &gatewayv1.Client{ClientId: req.GetClientId(), Roles: u.roles}
	if !u.account.IsZero() {
		c.Account = u.account.Proto()
	}
	return &gatewayv1.LoginResponse{
		AccessToken: g.issueLocked(req.GetClientId()),
		ExpireTime:  timestamppb.New(time.Now().Add(time.Hour)),
		Client:      c,
	}, nil
}

func (s authService) Logout(ctx context.Context, _ *gatewayv1.LogoutRequest) (*gatewayv1.LogoutResponse, error) {
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.beginLocked(ctx, gatewayv1connect.AuthServiceLogoutProcedure, "") == "" {
		return nil, unauthenticated()
	}
	tok := g.calls[len(g.calls)-1].Token
	delete(g.tokens, tok)
	delete(g.sessions, tok)
	g.wakeLocked()
	return &gatewayv1.LogoutResponse{}, nil
}

type paymentService struct {
	g *Gateway
}

func (s paymentService) MakePayment(ctx context.Context, req *gatewayv1.MakePaymentRequest) (*gatewayv1.MakePaymentResponse, error) {
	g := s.g
	p, err := g.idempotent(ctx, gatewayv1connect.PaymentServiceMakePaymentProcedure, req.GetTransactionId(), req,
		func(clientID string) (*gatewayv1.Payment, error) {
			payer, payee := g.users[clientID].account, client.AccountRefFromProto(req.GetPayee())
			now := timestamppb.New(time.Now())
			p := &gatewayv1.Payment{
				TransactionId: req.GetTransactionId(), Payer: payer.Proto(), Payee: req.GetPayee(),
				Amount: req.GetAmount(), Currency: req.GetCurrency(), Description: req.GetDescription(),
				CreateTime: now, CompleteTime: now, PayerClientId: clientID,
			}
			_, payeeExists := g.balances[payee]
			switch {
			case !payeeExists:
				p.Status, p.FailureReason = gatewayv1.PaymentStatus_PAYMENT_STATUS_FAILED, gatewayv1.FailureReason_FAILURE_REASON_ACCOUNT_NOT_FOUND
			case g.closedLocked(payer) || g.closedLocked(payee):
				p.Status, p.FailureReason = gatewayv1.PaymentStatus_PAYMENT_STATUS_FAILED, gatewayv1.FailureReason_FAILURE_REASON_ACCOUNT_CLOSED
			case g.balances[payer] < req.GetAmount():
				p.Status, p.FailureReason = gatewayv1.PaymentStatus_PAYMENT_STATUS_FAILED, gatewayv1.FailureReason_FAILURE_REASON_INSUFFICIENT_FUNDS
			default:
				g.balances[payer] -= req.GetAmount()
				g.balances[payee] += req.GetAmount()
				p.Status = gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED
			}
			typ := gatewayv1.PaymentEventType_PAYMENT_EVENT_TYPE_SUCCEEDED
			if p.GetStatus() == gatewayv1.PaymentStatus_PAYMENT_STATUS_FAILED {
				typ = gatewayv1.PaymentEventType_PAYMENT_EVENT_TYPE_FAILED
			}
			g.addEventLocked(typ, p, payer)
			if p.GetStatus() == gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED {
				g.addEventLocked(typ, p, payee)
			}
			return p, nil
		})
	if err != nil {
		return nil, err
	}
	return &gatewayv1.MakePaymentResponse{Payment: p}, nil
}

// visibleLocked returns the payment id if clientID may see it.
func (g *Gateway) visibleLocked(clientID, id string) (*gatewayv1.Payment, error) {
	t := g.txns[id]
	if t == nil || t.payment == nil || t.payment.GetPayer() == nil {
		return nil, rpcerr.New(connect.CodeNotFound, "NOT_FOUND", "no such payment", nil)
	}
	if g.staffLocked(clientID) {
		return t.payment, nil // admins and auditors read every payment
	}
	own := g.users[clientID].account
	if own.IsZero() || (client.AccountRefFromProto(t.payment.GetPayer()) != own && client.AccountRefFromProto(t.payment.GetPayee()) != own) {
		return nil, rpcerr.New(connect.CodeNotFound, "NOT_FOUND", "no such payment", nil)
	}
	return t.payment, nil
}

func (s paymentService) GetPayment(ctx context.Context, req *gatewayv1.GetPaymentRequest) (*gatewayv1.GetPaymentResponse, error) {
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	clientID := g.beginLocked(ctx, gatewayv1connect.PaymentServiceGetPaymentProcedure, req.GetTransactionId())
	if clientID == "" {
		return nil, unauthenticated()
	}
	p, err := g.visibleLocked(clientID, req.GetTransactionId())
	if err != nil {
		return nil, err
	}
	return &gatewayv1.GetPaymentResponse{Payment: proto.CloneOf(p)}, nil
}

func (s paymentService) ListPayments(ctx context.Context, req *gatewayv1.ListPaymentsRequest) (*gatewayv1.ListPaymentsResponse, error) {
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	clientID := g.beginLocked(ctx, gatewayv1connect.PaymentServiceListPaymentsProcedure, "")
	if clientID == "" {
		return nil, unauthenticated()
	}
	var mine []*gatewayv1.Payment
	for _, id := range slices.Backward(g.order) {
		if p, err := g.visibleLocked(clientID, id); err == nil {
			mine = append(mine, p)
		}
	}
	start := 0
	if tok := req.GetPageToken(); tok != "" {
		n, err := strconv.Atoi(tok)
		if err != nil || n < 0 || n > len(mine) {
			return nil, rpcerr.New(connect.CodeInvalidArgument, "INVALID_PAGE_TOKEN", "bad page token", nil)
		}
		start = n
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = 50
	}
	size = min(size, 100)
	end := min(start+size, len(mine))
	res := &gatewayv1.ListPaymentsResponse{}
	for _, p := range mine[start:end] {
		res.Payments = append(res.Payments, proto.CloneOf(p))
	}
	if end < len(mine) {
		res.NextPageToken = strconv.Itoa(end)
	}
	return res, nil
}

func (s paymentService) CheckBalance(ctx context.Context, req *gatewayv1.CheckBalanceRequest) (*gatewayv1.CheckBalanceResponse, error) {
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	clientID := g.beginLocked(ctx, gatewayv1connect.PaymentServiceCheckBalanceProcedure, "")
	if clientID == "" {
		return nil, unauthenticated()
	}
	u := g.users[clientID]
	acct := u.account
	if req.GetAccount() != nil {
		acct = client.AccountRefFromProto(req.GetAccount())
	}
	if acct.IsZero() || (acct != u.account && !slices.Contains(u.roles, gatewayv1.Role_ROLE_ADMIN)) {
		return nil, permissionDenied("customers may only read their own account")
	}
	bal, ok := g.balances[acct]
	if !ok {
		return nil, rpcerr.New(connect.CodeNotFound, "ACCOUNT_NOT_FOUND", "no such account at that bank", nil)
	}
	return &gatewayv1.CheckBalanceResponse{Account: acct.Proto(), Balance: bal, Available: bal, Currency: g.accounts[acct].currency}, nil
}

func (s paymentService) AcknowledgePayment(ctx context.Context, req *gatewayv1.AcknowledgePaymentRequest) (*gatewayv1.AcknowledgePaymentResponse, error) {
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	clientID := g.beginLocked(ctx, gatewayv1connect.PaymentServiceAcknowledgePaymentProcedure, req.GetTransactionId())
	if clientID == "" {
		return nil, unauthenticated()
	}
	p, err := g.visibleLocked(clientID, req.GetTransactionId())
	if err != nil {
		return nil, err
	}
	if client.AccountRefFromProto(p.GetPayee()) != g.users[clientID].account {
		return nil, permissionDenied("only the payee may acknowledge a payment")
	}
	if p.GetAcknowledgeTime() == nil {
		p.AcknowledgeTime = timestamppb.New(time.Now())
		g.addEventLocked(gatewayv1.PaymentEventType_PAYMENT_EVENT_TYPE_ACKNOWLEDGED, p, client.AccountRefFromProto(p.GetPayee()))
	}
	return &gatewayv1.AcknowledgePaymentResponse{Payment: proto.CloneOf(p)}, nil
}

func (s paymentService) WatchPayments(ctx context.Context, req *gatewayv1.WatchPaymentsRequest, stream *connect.ServerStream[gatewayv1.WatchPaymentsResponse]) error {
	g := s.g
	g.mu.Lock()
	clientID := g.beginLocked(ctx, gatewayv1connect.PaymentServiceWatchPaymentsProcedure, "")
	token := g.calls[len(g.calls)-1].Token
	g.watchAfter = append(g.watchAfter, req.GetAfterEventId())
	breakAfter := g.hooks.WatchBreakAfter
	own := g.users[clientID].account
	g.mu.Unlock()
	if clientID == "" {
		return unauthenticated()
	}
	cursor, sent := req.GetAfterEventId(), 0
	for {
		g.mu.Lock()
		if g.tokens[token] != clientID {
			// The session ended (logout, revoked, disabled, password
			// changed): so does its stream.
			g.mu.Unlock()
			return unauthenticated()
		}
		changed := g.eventsCh
		var batch []*gatewayv1.WatchPaymentsResponse
		for _, ev := range g.events {
			if ev.GetEventId() > cursor && client.AccountRefFromProto(ev.GetAccount()) == own {
				batch = append(batch, ev)
			}
		}
		g.mu.Unlock()
		for _, ev := range batch {
			if breakAfter > 0 && sent == breakAfter {
				return rpcerr.New(connect.CodeUnavailable, "SHUTTING_DOWN", "the gateway is restarting", nil)
			}
			if err := stream.Send(ev); err != nil {
				return err
			}
			cursor = ev.GetEventId()
			sent++
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

type adminService struct {
	g *Gateway
}

func (s adminService) UpdateBalance(ctx context.Context, req *gatewayv1.UpdateBalanceRequest) (*gatewayv1.UpdateBalanceResponse, error) {
	g := s.g
	acct := client.AccountRefFromProto(req.GetAccount())
	p, err := g.idempotent(ctx, gatewayv1connect.AdminServiceUpdateBalanceProcedure, req.GetTransactionId(), req,
		func(string) (*gatewayv1.Payment, error) {
			p := &gatewayv1.Payment{TransactionId: req.GetTransactionId(), Payee: req.GetAccount(),
				Amount: req.GetAmount(), Currency: req.GetCurrency(), Status: gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED}
			bal, ok := g.balances[acct]
			switch {
			case !ok:
				p.Status, p.FailureReason = gatewayv1.PaymentStatus_PAYMENT_STATUS_FAILED, gatewayv1.FailureReason_FAILURE_REASON_ACCOUNT_NOT_FOUND
			case g.closedLocked(acct):
				p.Status, p.FailureReason = gatewayv1.PaymentStatus_PAYMENT_STATUS_FAILED, gatewayv1.FailureReason_FAILURE_REASON_ACCOUNT_CLOSED
			case req.GetDirection() == gatewayv1.Direction_DIRECTION_DEBIT && bal < req.GetAmount():
				p.Status, p.FailureReason = gatewayv1.PaymentStatus_PAYMENT_STATUS_FAILED, gatewayv1.FailureReason_FAILURE_REASON_INSUFFICIENT_FUNDS
			case req.GetDirection() == gatewayv1.Direction_DIRECTION_DEBIT:
				g.balances[acct] -= req.GetAmount()
			default:
				g.balances[acct] += req.GetAmount()
			}
			return p, nil
		})
	if err != nil {
		return nil, err
	}
	return &gatewayv1.UpdateBalanceResponse{TransactionId: p.GetTransactionId(), Account: req.GetAccount(), Balance: g.Balance(acct), Currency: req.GetCurrency()}, nil
}

func (s adminService) ListBanks(ctx context.Context, _ *gatewayv1.ListBanksRequest) (*gatewayv1.ListBanksResponse, error) {
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	clientID := g.beginLocked(ctx, gatewayv1connect.AdminServiceListBanksProcedure, "")
	if clientID == "" {
		return nil, unauthenticated()
	}
	if !slices.Contains(g.users[clientID].roles, gatewayv1.Role_ROLE_ADMIN) {
		return nil, permissionDenied("permission denied")
	}
	return &gatewayv1.ListBanksResponse{Banks: []*gatewayv1.Bank{
		{Name: "bank-a", Url: "https://127.0.0.1:1", Status: gatewayv1.BankStatus_BANK_STATUS_SERVING},
		{Name: "bank-b", Url: "https://127.0.0.1:2", Status: gatewayv1.BankStatus_BANK_STATUS_SERVING},
	}}, nil
}

func (s adminService) ClearLoginLockout(ctx context.Context, req *gatewayv1.ClearLoginLockoutRequest) (*gatewayv1.ClearLoginLockoutResponse, error) {
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	clientID := g.beginLocked(ctx, gatewayv1connect.AdminServiceClearLoginLockoutProcedure, "")
	if clientID == "" {
		return nil, unauthenticated()
	}
	if !slices.Contains(g.users[clientID].roles, gatewayv1.Role_ROLE_ADMIN) {
		return nil, permissionDenied("permission denied")
	}
	n := g.lockouts[req.GetClientId()]
	delete(g.lockouts, req.GetClientId())
	return &gatewayv1.ClearLoginLockoutResponse{ClientId: req.GetClientId(), ClearedSources: int32(n), LockedSources: int32(n)}, nil //nolint:gosec // a test's small number
}
