package gateway

import (
	"context"

	bankv1 "github.com/remitpay/remit/gen/remit/bank/v1"
)

// AccountBank is the account side of a bank client: opening, closing and
// listing accounts, and consuming enrollment codes (issue 12). It is apart
// from BankClient, which is the coordinator's money path. Errors are the
// bank's Connect errors as they came (their ErrorInfo reasons are the
// bank's), or transport errors.
type AccountBank interface {
	OpenAccount(ctx context.Context, req *bankv1.OpenAccountRequest) (*bankv1.Account, error)
	CloseAccount(ctx context.Context, accountID string) (*bankv1.Account, error)
	ListAccounts(ctx context.Context, pageSize int32, pageToken string) (accounts []*bankv1.Account, next string, err error)
	ConsumeEnrollmentCode(ctx context.Context, req *bankv1.ConsumeEnrollmentCodeRequest) (*bankv1.ConsumeEnrollmentCodeResponse, error)
}

var _ AccountBank = (*connectBank)(nil)

// AccountBank returns the account side of the registered bank name, and
// its last known health; nil and BankUnknown if it is not registered.
func (r *Registry) AccountBank(name string) (AccountBank, BankState) {
	c, state := r.Lookup(name)
	if c == nil {
		return nil, state
	}
	ab, ok := c.(AccountBank)
	if !ok {
		return nil, BankUnknown
	}
	return ab, state
}

func (b *connectBank) OpenAccount(ctx context.Context, req *bankv1.OpenAccountRequest) (*bankv1.Account, error) {
	res, err := b.c.OpenAccount(ctx, req)
	if err != nil {
		return nil, err
	}
	return res.GetAccount(), nil
}

func (b *connectBank) CloseAccount(ctx context.Context, accountID string) (*bankv1.Account, error) {
	res, err := b.c.CloseAccount(ctx, &bankv1.CloseAccountRequest{AccountId: accountID})
	if err != nil {
		return nil, err
	}
	return res.GetAccount(), nil
}

func (b *connectBank) ListAccounts(ctx context.Context, pageSize int32, pageToken string) ([]*bankv1.Account, string, error) {
	res, err := b.c.ListAccounts(ctx, &bankv1.ListAccountsRequest{PageSize: pageSize, PageToken: pageToken})
	if err != nil {
		return nil, "", err
	}
	return res.GetAccounts(), res.GetNextPageToken(), nil
}

func (b *connectBank) ConsumeEnrollmentCode(ctx context.Context, req *bankv1.ConsumeEnrollmentCodeRequest) (*bankv1.ConsumeEnrollmentCodeResponse, error) {
	return b.c.ConsumeEnrollmentCode(ctx, req)
}
