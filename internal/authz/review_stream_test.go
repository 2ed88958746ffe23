package authz_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/time/rate"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
	"github.com/remitpay/remit/internal/authz"
)

// revokingVerifier is a TokenVerifier and SessionNotifier with the
// semantics of auth.Authenticator: SessionEnded's channel is closed by a
// revocation that happens after it was registered, never by one before.
// Its Verify lets revokeAfterVerify run once right after a successful
// verification, which is the window between the interceptor's check and
// its registration of the stream's watch.
type revokingVerifier struct {
	mu                sync.Mutex
	revoked           bool
	watches           []chan struct{}
	revokeAfterVerify bool
}

func (v *revokingVerifier) Verify(_ context.Context, token string) (*authz.Principal, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if token != tokenCustomer || v.revoked {
		return nil, fmt.Errorf("%w: revoked", authz.ErrUnauthenticated)
	}
	p := &authz.Principal{Kind: authz.KindClient, ClientID: "alice", Roles: []authz.Role{authz.RoleCustomer},
		Account: &authz.Account{Bank: "bank-a", ID: "alice"}, SessionID: "sess-alice"}
	if v.revokeAfterVerify {
		// An admin's RevokeSessions lands now: it tells the watches that
		// exist, none yet.
		v.revokeAfterVerify, v.revoked = false, true
		for _, ch := range v.watches {
			close(ch)
		}
		v.watches = nil
	}
	return p, nil
}

func (v *revokingVerifier) SessionEnded(_, _ string) (<-chan struct{}, func()) {
	v.mu.Lock()
	defer v.mu.Unlock()
	ch := make(chan struct{})
	v.watches = append(v.watches, ch)
	return ch, func() {}
}

type blockingWatch struct {
	gatewayv1connect.UnimplementedPaymentServiceHandler
}

func (blockingWatch) WatchPayments(ctx context.Context, _ *gatewayv1.WatchPaymentsRequest, s *connect.ServerStream[gatewayv1.WatchPaymentsResponse]) error {
	if err := s.Send(&gatewayv1.WatchPaymentsResponse{}); err != nil {
		return err
	}
	<-ctx.Done()
	return ctx.Err()
}

// TestReviewStreamOfSessionRevokedWhileOpening: a session revoked between
// the interceptor's verification of the stream's token and the watch of
// its session must still end the stream at once, not at the next periodic
// re-verification (here an hour away).
func TestReviewStreamOfSessionRevokedWhileOpening(t *testing.T) {
	v := &revokingVerifier{revokeAfterVerify: true}
	ic := authz.NewInterceptor(authz.Config{Verifier: v, Rate: rate.Inf, StreamRecheck: time.Hour})
	mux := http.NewServeMux()
	mux.Handle(gatewayv1connect.NewPaymentServiceHandler(blockingWatch{}, connect.WithInterceptors(ic)))
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := &http.Client{Transport: headerTransport{base: srv.Client().Transport,
		header: http.Header{"Authorization": {"Bearer " + tokenCustomer}}}}
	c := gatewayv1connect.NewPaymentServiceClient(hc, srv.URL)
	stream, err := c.WatchPayments(ctx, &gatewayv1.WatchPaymentsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close() //nolint:errcheck // test cleanup
	for stream.Receive() {
	}
	err = stream.Err()
	if ctx.Err() != nil {
		t.Fatal("the stream of a revoked session is still open after 10s")
	}
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("stream ended with %v, want unauthenticated", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Error("stream outlived its session")
	}
}

// demotingVerifier answers an auditor for the first verification of the
// token and a customer after (the users file took the role away), without
// telling any watch.
type demotingVerifier struct {
	mu    sync.Mutex
	calls int
}

func (v *demotingVerifier) Verify(_ context.Context, token string) (*authz.Principal, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if token != tokenCustomer {
		return nil, fmt.Errorf("%w: unknown", authz.ErrUnauthenticated)
	}
	v.calls++
	roles := []authz.Role{authz.RoleCustomer, authz.RoleAuditor}
	if v.calls > 1 {
		roles = []authz.Role{authz.RoleCustomer}
	}
	return &authz.Principal{Kind: authz.KindClient, ClientID: "bob", Roles: roles,
		Account: &authz.Account{Bank: "bank-b", ID: "bob"}, SessionID: "sess-bob"}, nil
}

func (v *demotingVerifier) SessionEnded(_, _ string) (<-chan struct{}, func()) {
	return make(chan struct{}), func() {}
}

// TestReviewStreamEndsWhenItsPrincipalChanges: a stream opened as an
// auditor (who sees every account's payments) ends once its token speaks
// for a mere customer, rather than going on with the old roles as long as
// the token works.
func TestReviewStreamEndsWhenItsPrincipalChanges(t *testing.T) {
	ic := authz.NewInterceptor(authz.Config{Verifier: &demotingVerifier{}, Rate: rate.Inf, StreamRecheck: time.Hour})
	mux := http.NewServeMux()
	mux.Handle(gatewayv1connect.NewPaymentServiceHandler(blockingWatch{}, connect.WithInterceptors(ic)))
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := &http.Client{Transport: headerTransport{base: srv.Client().Transport,
		header: http.Header{"Authorization": {"Bearer " + tokenCustomer}}}}
	stream, err := gatewayv1connect.NewPaymentServiceClient(hc, srv.URL).WatchPayments(ctx, &gatewayv1.WatchPaymentsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close() //nolint:errcheck // test cleanup
	for stream.Receive() {
	}
	if ctx.Err() != nil {
		t.Fatal("the stream opened as an auditor is still open after 10s")
	}
	if connect.CodeOf(stream.Err()) != connect.CodeUnauthenticated {
		t.Errorf("stream ended with %v, want unauthenticated", stream.Err())
	}
}
