package gateway

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"golang.org/x/time/rate"
)

// A password within the API's limit of 256 characters but over the 256
// bytes the hash accepts (here 200 two-byte characters) is the caller's
// mistake: invalid_argument WEAK_PASSWORD before the bank is called, not
// an internal error after the code was consumed.
func TestReviewRegisterPasswordOverTheByteLimit(t *testing.T) {
	a, bank := newRegisterAPI(t, rate.Inf, 1)
	req := registerReq("erin", "erin", "ABCD-EFGH")
	req.Password = strings.Repeat("éà", 100)
	_, err := a.Register(context.Background(), req)
	wantReason(t, "400-byte password", err, connect.CodeInvalidArgument, "WEAK_PASSWORD")
	if bank.calls != 0 {
		t.Errorf("%d bank calls for a password the gateway cannot store, want none", bank.calls)
	}
}
