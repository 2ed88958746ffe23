package gateway_test

import (
	"encoding/json"
	"os"
	"testing"

	"connectrpc.com/connect"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/auth"
	"github.com/remitpay/remit/services/gateway/gatewaytest"
)

// rewriteUsersFile writes the users file of n again with the roles and
// account of clientID replaced, atomically, as an operator's edit would.
func rewriteUsersFile(t *testing.T, path, clientID string, roles []string, bank, accountID string) {
	t.Helper()
	users, err := auth.LoadUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	type account struct {
		Bank      string `json:"bank"`
		AccountID string `json:"account_id"`
	}
	type user struct {
		ClientID     string   `json:"client_id"`
		PasswordHash string   `json:"password_hash"`
		Roles        []string `json:"roles"`
		Account      *account `json:"account,omitempty"`
	}
	var list []user
	for _, u := range users.All() {
		e := user{ClientID: u.ClientID, PasswordHash: u.PasswordHash}
		for _, r := range u.Roles {
			e.Roles = append(e.Roles, string(r))
		}
		if u.Account != nil {
			e.Account = &account{Bank: u.Account.Bank, AccountID: u.Account.ID}
		}
		if u.ClientID == clientID {
			e.Roles, e.Account = roles, &account{Bank: bank, AccountID: accountID}
		}
		list = append(list, e)
	}
	data, err := json.Marshal(map[string]any{"users": list})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".tmp", data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// TestReviewIntegrationDemotedAdminsStreamEnds: an admin's WatchPayments
// stream sees every account's payments. The users file demotes the admin
// to a customer of one account: the stream opened as an admin must end at
// once (the token still works, so neither the session watch nor the
// periodic recheck would end it), and a new one sees the new scope.
func TestReviewIntegrationDemotedAdminsStreamEnds(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{StreamRecheck: longRecheck})
	admin := n.Login(t, gatewaytest.AdminID)
	ctx := callCtx(t)
	stream, err := admin.Payments.WatchPayments(ctx, &gatewayv1.WatchPaymentsRequest{}) // returns once the stream is open
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for stream.Receive() {
		}
		done <- stream.Err()
	}()
	rewriteUsersFile(t, n.UsersFile(), gatewaytest.AdminID, []string{"customer"}, "bank-a", "zed")
	select {
	case err := <-done:
		if connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("the demoted admin's stream ended with %v, want unauthenticated", err)
		}
	case <-ctx.Done():
		t.Fatal("the stream opened as an admin outlived the admin role")
	}
}
