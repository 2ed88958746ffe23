package clienttest

import (
	"context"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/remitpay/remit/client"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
	"github.com/remitpay/remit/internal/rpcerr"
)

// Banks are the banks every fake gateway knows.
var Banks = []string{"bank-a", "bank-b"}

// account is what a bank records about an account besides its balance.
type account struct {
	owner    string
	currency string
	opened   time.Time
	closed   time.Time // zero while open
}

// opening is one OpenAccount request, kept by request id.
type opening struct {
	req     *gatewayv1.OpenAccountRequest
	account client.AccountRef
}

// SetEnrollmentCode makes code the one-time enrollment code of account, as
// `remit bank enroll` would issue it; Register consumes it.
func (g *Gateway) SetEnrollmentCode(account client.AccountRef, code string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.codes[account] = code
}

// Account returns account as its bank reports it, or nil if it was never
// opened.
func (g *Gateway) Account(ref client.AccountRef) *gatewayv1.Account {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.accountLocked(ref)
}

func (g *Gateway) accountLocked(ref client.AccountRef) *gatewayv1.Account {
	a := g.accounts[ref]
	if a == nil {
		return nil
	}
	p := &gatewayv1.Account{
		Account: ref.Proto(), Owner: a.owner, Currency: a.currency, State: gatewayv1.AccountState_ACCOUNT_STATE_OPEN,
		Balance: g.balances[ref], Available: g.balances[ref], OpenTime: timestamppb.New(a.opened),
	}
	if !a.closed.IsZero() {
		p.State, p.CloseTime = gatewayv1.AccountState_ACCOUNT_STATE_CLOSED, timestamppb.New(a.closed)
	}
	return p
}

// closedLocked reports whether ref is a closed account.
func (g *Gateway) closedLocked(ref client.AccountRef) bool {
	a := g.accounts[ref]
	return a != nil && !a.closed.IsZero()
}

func bankNotFound() error {
	return rpcerr.New(connect.CodeFailedPrecondition, rpcerr.EnumReason(gatewayv1.FailureReason_FAILURE_REASON_BANK_NOT_FOUND),
		"no bank of that name is registered", nil)
}

func (s adminService) OpenAccount(ctx context.Context, req *gatewayv1.OpenAccountRequest) (*gatewayv1.OpenAccountResponse, error) {
	g := s.g
	g.mu.Lock()
	if _, err := g.authorizeLocked(ctx, gatewayv1connect.AdminServiceOpenAccountProcedure, req.GetRequestId(), adminOnly...); err != nil {
		g.mu.Unlock()
		return nil, err
	}
	g.attempts[req.GetRequestId()]++
	call, hooks := g.attempts[req.GetRequestId()], g.hooks
	g.mu.Unlock()
	if hooks.Before != nil {
		if err := hooks.Before(call, req.GetRequestId()); err != nil {
			return nil, err
		}
	}

	g.mu.Lock()
	ref := client.AccountRefFromProto(req.GetAccount())
	var res *gatewayv1.OpenAccountResponse
	switch o := g.openings[req.GetRequestId()]; {
	case o != nil && !proto.Equal(o.req, req):
		g.mu.Unlock()
		return nil, rpcerr.New(connect.CodeInvalidArgument, client.ReasonIdempotencyKeyReused,
			"this request id was already used for a different opening; generate a new request id", nil)
	case o != nil:
		res = &gatewayv1.OpenAccountResponse{Account: g.accountLocked(o.account)}
	case !slices.Contains(Banks, ref.Bank):
		g.mu.Unlock()
		return nil, bankNotFound()
	case g.accounts[ref] != nil:
		g.mu.Unlock()
		return nil, rpcerr.New(connect.CodeAlreadyExists, "ACCOUNT_EXISTS", "an account with this id is already open at the bank", nil)
	default:
		owner := req.GetOwner()
		if owner == "" {
			owner = ref.ID
		}
		g.accounts[ref] = &account{owner: owner, currency: req.GetCurrency(), opened: time.Now()}
		g.balances[ref] = 0
		g.openings[req.GetRequestId()] = &opening{req: proto.CloneOf(req), account: ref}
		res = &gatewayv1.OpenAccountResponse{Account: g.accountLocked(ref)}
	}
	g.mu.Unlock()

	if hooks.After != nil {
		if err := hooks.After(call, req.GetRequestId()); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func (s adminService) CloseAccount(ctx context.Context, req *gatewayv1.CloseAccountRequest) (*gatewayv1.CloseAccountResponse, error) {
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, err := g.authorizeLocked(ctx, gatewayv1connect.AdminServiceCloseAccountProcedure, "", adminOnly...); err != nil {
		return nil, err
	}
	ref := client.AccountRefFromProto(req.GetAccount())
	a := g.accounts[ref]
	switch {
	case !slices.Contains(Banks, ref.Bank):
		return nil, bankNotFound()
	case a == nil:
		return nil, rpcerr.New(connect.CodeNotFound, rpcerr.EnumReason(gatewayv1.FailureReason_FAILURE_REASON_ACCOUNT_NOT_FOUND),
			"no such account at that bank", nil)
	case a.closed.IsZero() && g.balances[ref] != 0:
		return nil, rpcerr.New(connect.CodeFailedPrecondition, "ACCOUNT_NOT_EMPTY",
			"the account still holds money: withdraw or pay it out first", nil)
	case a.closed.IsZero():
		a.closed = time.Now()
	}
	return &gatewayv1.CloseAccountResponse{Account: g.accountLocked(ref)}, nil
}

func (s adminService) ListAccounts(ctx context.Context, req *gatewayv1.ListAccountsRequest) (*gatewayv1.ListAccountsResponse, error) {
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, err := g.authorizeLocked(ctx, gatewayv1connect.AdminServiceListAccountsProcedure, "", staffRead...); err != nil {
		return nil, err
	}
	if !slices.Contains(Banks, req.GetBank()) {
		return nil, bankNotFound()
	}
	var refs []client.AccountRef
	for ref := range g.accounts {
		if ref.Bank == req.GetBank() {
			refs = append(refs, ref)
		}
	}
	slices.SortFunc(refs, func(a, b client.AccountRef) int { return strings.Compare(a.ID, b.ID) })
	start, end, next, err := page(len(refs), req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	res := &gatewayv1.ListAccountsResponse{NextPageToken: next}
	for _, ref := range refs[start:end] {
		res.Accounts = append(res.Accounts, g.accountLocked(ref))
	}
	return res, nil
}
