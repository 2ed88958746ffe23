package bank_test

import (
	"crypto/tls"
	"errors"
	"strconv"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	bankv1 "github.com/remitpay/remit/gen/remit/bank/v1"
	"github.com/remitpay/remit/gen/remit/bank/v1/bankv1connect"
	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/internal/rpcerr"
)

// unaryResult is what a unary call returned, in a batch result's shape, so
// that each batch item can be compared with the unary call it stands for.
func unaryResult[R proto.Message](res R, err error) (R, *bankv1.BatchItemError) {
	if err == nil {
		return res, nil
	}
	var zero R
	e := &bankv1.BatchItemError{Code: connect.CodeOf(err).String(), Reason: rpcerr.Reason(err)}
	if cerr, ok := errors.AsType[*connect.Error](err); ok {
		e.Message = cerr.Message()
	}
	return zero, e
}

// TestBatchHandler shows that each item of PrepareTransactions and
// CommitTransactions gets exactly the answer its unary call gets: a YES, a
// NO, a validation error and a ledger error side by side in one batch, each
// in its own result, none failing the others.
func TestBatchHandler(t *testing.T) {
	t.Parallel()
	layout := certs(t)
	l := newLedger(t)
	url := startBank(t, layout, l, tls.RequireAndVerifyClientCert)
	c := bankv1connect.NewBankServiceClient(httpClient(t, layout, pki.GatewayName), url, connect.WithGRPC())
	ctx := t.Context()
	debit, credit := bankv1.Direction_DIRECTION_DEBIT, bankv1.Direction_DIRECTION_CREDIT
	expire := timestamppb.New(time.Now().Add(time.Minute))

	yesID := newID()
	prepares := []*bankv1.PrepareTransactionRequest{
		{TransactionId: yesID, Legs: []*bankv1.Leg{protoLeg("alice", debit, 7), protoLeg("bob", credit, 7)}, ExpireTime: expire},
		{TransactionId: newID(), Legs: []*bankv1.Leg{protoLeg("alice", debit, 1_000_000)}, ExpireTime: expire},
		{TransactionId: "not-a-uuid", Legs: []*bankv1.Leg{protoLeg("alice", debit, 1)}, ExpireTime: expire},
		{TransactionId: newID(), Legs: []*bankv1.Leg{protoLeg("alice", debit, 1), protoLeg("alice", debit, 2)}, ExpireTime: expire},
		{TransactionId: newID(), Legs: []*bankv1.Leg{protoLeg("nobody", credit, 1)}, ExpireTime: expire},
	}
	res, err := c.PrepareTransactions(ctx, &bankv1.PrepareTransactionsRequest{Items: prepares})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.GetResults()) != len(prepares) {
		t.Fatalf("%d results for %d items", len(res.GetResults()), len(prepares))
	}
	wantKinds := []string{"yes", "no", "invalid_argument", "invalid_argument", "no"}
	for i, item := range prepares {
		got := res.GetResults()[i]
		// A prepare repeats with the same answer, so the unary call after
		// the batch must answer exactly what the batch item answered.
		wantRes, wantErr := unaryResult(c.PrepareTransaction(ctx, item))
		if diff := cmp.Diff(wantRes, got.GetResponse(), protocmp.Transform()); diff != "" {
			t.Errorf("item %d response (-unary +batch):\n%s", i, diff)
		}
		if diff := cmp.Diff(wantErr, got.GetError(), protocmp.Transform()); diff != "" {
			t.Errorf("item %d error (-unary +batch):\n%s", i, diff)
		}
		kind := got.GetError().GetCode()
		switch got.GetResponse().GetVote() {
		case bankv1.Vote_VOTE_YES:
			kind = "yes"
		case bankv1.Vote_VOTE_NO:
			kind = "no"
		case bankv1.Vote_VOTE_UNSPECIFIED:
		}
		if kind != wantKinds[i] {
			t.Errorf("item %d = %s (%v), want %s", i, kind, got, wantKinds[i])
		}
	}
	if r := res.GetResults()[1].GetResponse(); r.GetReason() != bankv1.RefusalReason_REFUSAL_REASON_INSUFFICIENT_FUNDS || r.GetAccountId() != "alice" {
		t.Errorf("NO vote = %v, want INSUFFICIENT_FUNDS for alice", r)
	}
	if e := res.GetResults()[3].GetError(); e.GetReason() != "INVALID_ARGUMENT" {
		t.Errorf("ledger error = %v, want reason INVALID_ARGUMENT", e)
	}
	if _, ok, _ := l.State(ctx, "not-a-uuid"); ok {
		t.Error("an invalid item reached the ledger")
	}
	wantBalances(t, l, "alice", balances{100, 7, 0})

	commits := []*bankv1.CommitTransactionRequest{
		{TransactionId: yesID, Decision: bankv1.Decision_DECISION_COMMIT},
		{TransactionId: newID(), Decision: bankv1.Decision_DECISION_COMMIT}, // unknown: refused
		{TransactionId: newID(), Decision: bankv1.Decision_DECISION_ABORT},  // presumed abort
		{TransactionId: newID()}, // no decision: invalid
	}
	cres, err := c.CommitTransactions(ctx, &bankv1.CommitTransactionsRequest{Items: commits})
	if err != nil {
		t.Fatal(err)
	}
	if len(cres.GetResults()) != len(commits) {
		t.Fatalf("%d results for %d items", len(cres.GetResults()), len(commits))
	}
	wantStates := []string{"TRANSACTION_STATE_COMMITTED", "failed_precondition", "TRANSACTION_STATE_ABORTED", "invalid_argument"}
	for i, item := range commits {
		got := cres.GetResults()[i]
		wantRes, wantErr := unaryResult(c.CommitTransaction(ctx, item))
		if diff := cmp.Diff(wantRes, got.GetResponse(), protocmp.Transform()); diff != "" {
			t.Errorf("commit item %d response (-unary +batch):\n%s", i, diff)
		}
		if diff := cmp.Diff(wantErr, got.GetError(), protocmp.Transform()); diff != "" {
			t.Errorf("commit item %d error (-unary +batch):\n%s", i, diff)
		}
		kind := got.GetError().GetCode()
		if got.GetResponse() != nil {
			kind = got.GetResponse().GetState().String()
		}
		if kind != wantStates[i] {
			t.Errorf("commit item %d = %s (%v), want %s", i, kind, got, wantStates[i])
		}
	}
	if e := cres.GetResults()[1].GetError(); e.GetReason() != "CANNOT_COMMIT" {
		t.Errorf("commit of unknown = %v, want reason CANNOT_COMMIT", e)
	}
	wantBalances(t, l, "alice", balances{93, 0, 0})
	wantBalances(t, l, "bob", balances{57, 0, 0})
}

// TestBatchHandlerConcurrentItems runs a full batch of prepares and commits
// on one account: each item is applied exactly once, whatever their order.
func TestBatchHandlerConcurrentItems(t *testing.T) {
	t.Parallel()
	layout := certs(t)
	l := newLedger(t)
	url := startBank(t, layout, l, tls.RequireAndVerifyClientCert)
	c := bankv1connect.NewBankServiceClient(httpClient(t, layout, pki.GatewayName), url)
	ctx := t.Context()
	const n = 100 // alice has 100: every 1-unit debit fits, one more would not
	var prepares []*bankv1.PrepareTransactionRequest
	var commits []*bankv1.CommitTransactionRequest
	for range n {
		id := newID()
		prepares = append(prepares, &bankv1.PrepareTransactionRequest{
			TransactionId: id,
			Legs:          []*bankv1.Leg{protoLeg("alice", bankv1.Direction_DIRECTION_DEBIT, 1), protoLeg("bob", bankv1.Direction_DIRECTION_CREDIT, 1)},
			ExpireTime:    timestamppb.New(time.Now().Add(time.Minute)),
		})
		commits = append(commits, &bankv1.CommitTransactionRequest{TransactionId: id, Decision: bankv1.Decision_DECISION_COMMIT})
	}
	res, err := c.PrepareTransactions(ctx, &bankv1.PrepareTransactionsRequest{Items: prepares})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res.GetResults() {
		if r.GetResponse().GetVote() != bankv1.Vote_VOTE_YES {
			t.Fatalf("item %d: %v", i, r)
		}
	}
	wantBalances(t, l, "alice", balances{100, n, 0})
	cres, err := c.CommitTransactions(ctx, &bankv1.CommitTransactionsRequest{Items: commits})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range cres.GetResults() {
		if r.GetResponse().GetState() != bankv1.TransactionState_TRANSACTION_STATE_COMMITTED {
			t.Fatalf("commit item %d: %v", i, r)
		}
	}
	wantBalances(t, l, "alice", balances{0, 0, 0})
	wantBalances(t, l, "bob", balances{50 + n, 0, 0})
}

func TestBatchHandlerLimits(t *testing.T) {
	t.Parallel()
	layout := certs(t)
	l := newLedger(t)
	url := startBank(t, layout, l, tls.RequireAndVerifyClientCert)
	c := bankv1connect.NewBankServiceClient(httpClient(t, layout, pki.GatewayName), url)
	abort := func(n int) []*bankv1.CommitTransactionRequest {
		items := make([]*bankv1.CommitTransactionRequest, n)
		for i := range items {
			items[i] = &bankv1.CommitTransactionRequest{TransactionId: newID(), Decision: bankv1.Decision_DECISION_ABORT}
		}
		return items
	}
	for _, n := range []int{0, 257} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			_, err := c.CommitTransactions(t.Context(), &bankv1.CommitTransactionsRequest{Items: abort(n)})
			wantCode(t, err, connect.CodeInvalidArgument, "")
			_, err = c.PrepareTransactions(t.Context(), &bankv1.PrepareTransactionsRequest{Items: make([]*bankv1.PrepareTransactionRequest, n)})
			wantCode(t, err, connect.CodeInvalidArgument, "")
		})
	}
	res, err := c.CommitTransactions(t.Context(), &bankv1.CommitTransactionsRequest{Items: abort(256)})
	if err != nil || len(res.GetResults()) != 256 {
		t.Fatalf("a batch of 256: %d results, %v", len(res.GetResults()), err)
	}
}

// TestBatchHandlerAuthorization: the batch RPCs are the gateway's only, as
// the unary ones, and refused before validation or the ledger sees them.
func TestBatchHandlerAuthorization(t *testing.T) {
	t.Parallel()
	layout := certs(t)
	l := newLedger(t)
	mtlsURL := startBank(t, layout, l, tls.RequireAndVerifyClientCert)
	optionalURL := startBank(t, layout, l, tls.VerifyClientCertIfGiven)
	prepare := &bankv1.PrepareTransactionsRequest{Items: []*bankv1.PrepareTransactionRequest{{
		TransactionId: newID(),
		Legs:          []*bankv1.Leg{protoLeg("alice", bankv1.Direction_DIRECTION_DEBIT, 1)},
		ExpireTime:    timestamppb.New(time.Now().Add(time.Minute)),
	}}}
	commit := &bankv1.CommitTransactionsRequest{Items: []*bankv1.CommitTransactionRequest{{TransactionId: newID(), Decision: bankv1.Decision_DECISION_ABORT}}}
	tests := []struct {
		name      string
		url       string
		principal string
		code      connect.Code
		reason    string
	}{
		{"bank certificate", mtlsURL, "bank-a", connect.CodePermissionDenied, "PERMISSION_DENIED"},
		{"bank certificate, optional TLS auth", optionalURL, "bank-a", connect.CodePermissionDenied, "PERMISSION_DENIED"},
		{"no certificate", optionalURL, "", connect.CodeUnauthenticated, "UNAUTHENTICATED"},
	}
	for _, p := range protocols {
		for _, tt := range tests {
			t.Run(p.name+"/"+tt.name, func(t *testing.T) {
				c := bankv1connect.NewBankServiceClient(httpClient(t, layout, tt.principal), tt.url, p.opts...)
				_, err := c.PrepareTransactions(t.Context(), prepare)
				wantCode(t, err, tt.code, tt.reason)
				_, err = c.CommitTransactions(t.Context(), commit)
				wantCode(t, err, tt.code, tt.reason)
				// Even an empty batch is refused for who sends it.
				_, err = c.CommitTransactions(t.Context(), &bankv1.CommitTransactionsRequest{})
				wantCode(t, err, tt.code, tt.reason)
			})
		}
	}
	wantBalances(t, l, "alice", balances{100, 0, 0})
	// The gateway is served.
	c := bankv1connect.NewBankServiceClient(httpClient(t, layout, pki.GatewayName), mtlsURL)
	res, err := c.PrepareTransactions(t.Context(), prepare)
	if err != nil || res.GetResults()[0].GetResponse().GetVote() != bankv1.Vote_VOTE_YES {
		t.Fatalf("gateway: %v, %v", res, err)
	}
	wantBalances(t, l, "alice", balances{100, 1, 0})
}
