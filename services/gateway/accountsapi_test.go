package gateway

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	bankv1 "github.com/remitpay/remit/gen/remit/bank/v1"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
)

// TestAccountProto: a bank's account as AdminService shows it, available
// being the balance less what prepared payments hold.
func TestAccountProto(t *testing.T) {
	opened := timestamppb.New(time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC))
	closed := timestamppb.New(time.Date(2026, 12, 3, 13, 0, 0, 0, time.UTC))
	tests := []struct {
		in   *bankv1.Account
		want *gatewayv1.Account
	}{
		{
			&bankv1.Account{AccountId: "erin", Owner: "erin", Currency: "usd", State: bankv1.AccountState_ACCOUNT_STATE_OPEN,
				Balance: 100, Held: 30, Incoming: 7, OpenTime: opened},
			&gatewayv1.Account{Account: &gatewayv1.AccountRef{Bank: "bank-b", AccountId: "erin"}, Owner: "erin", Currency: "usd",
				State: gatewayv1.AccountState_ACCOUNT_STATE_OPEN, Balance: 100, Available: 70, OpenTime: opened},
		},
		{
			&bankv1.Account{AccountId: "erin", Owner: "erin", Currency: "usd", State: bankv1.AccountState_ACCOUNT_STATE_CLOSED,
				OpenTime: opened, CloseTime: closed},
			&gatewayv1.Account{Account: &gatewayv1.AccountRef{Bank: "bank-b", AccountId: "erin"}, Owner: "erin", Currency: "usd",
				State: gatewayv1.AccountState_ACCOUNT_STATE_CLOSED, OpenTime: opened, CloseTime: closed},
		},
	}
	for _, tt := range tests {
		if d := cmp.Diff(tt.want, accountProto("bank-b", tt.in), protocmp.Transform()); d != "" {
			t.Errorf("accountProto(%v) (-want +got):\n%s", tt.in, d)
		}
	}
}
