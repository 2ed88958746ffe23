package names_test

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/url"
	"testing"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/internal/auth"
	"github.com/remitpay/remit/internal/config"
	"github.com/remitpay/remit/internal/pki"
)

// TestConsumersFollowTheRules runs the table through every place outside
// the API that accepts a name: the PKI (a bank's URI SAN), the users file,
// bank config files and the SDK. Each must accept exactly the names the
// rule accepts, so a change in names.proto is seen by all of them. (The
// servers' request fields are covered by TestGoAndProtovalidateAgree.)
func TestConsumersFollowTheRules(t *testing.T) {
	hash, err := auth.HashPasswordParams("pw", auth.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		t.Fatal(err)
	}
	users := func(clientID, bank, accountID string) error {
		doc, err := json.Marshal(map[string]any{"users": []any{map[string]any{
			"client_id": clientID, "password_hash": hash, "roles": []string{"customer"},
			"account": map[string]string{"bank": bank, "account_id": accountID},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = auth.ParseUsers("users.json", doc)
		return err
	}
	bankConfig := func(name, accountID, currency string) error {
		b := config.Bank{
			Name: name, Listen: "127.0.0.1:8444", URL: "https://127.0.0.1:8444", GatewayURL: "https://127.0.0.1:8443",
			TLS:      config.TLS{CA: "ca.pem", Cert: "b.pem", Key: "b-key.pem", ClientCert: "c.pem", ClientKey: "c-key.pem"},
			DataDir:  "data",
			Accounts: []config.Account{{ID: accountID, Owner: "alice", Currency: currency}},
		}
		return b.Validate()
	}
	bankSAN := func(name string) error {
		cert := &x509.Certificate{URIs: []*url.URL{pki.BankIdentity(name).URI()}}
		if id, ok := pki.IdentityFromCert(cert); !ok || id != pki.BankIdentity(name) {
			return errors.New("not a bank identity")
		}
		return nil
	}
	accountRef := func(bank, id string) error {
		_, err := client.ParseAccountRef(bank + "/" + id)
		return err
	}
	consumers := map[string]map[string]func(string) error{
		"bank": {
			"pki.IdentityFromCert":   bankSAN,
			"auth.ParseUsers":        func(s string) error { return users("alice", s, "alice") },
			"config.Bank.Validate":   func(s string) error { return bankConfig(s, "alice", "usd") },
			"client.ParseAccountRef": func(s string) error { return accountRef(s, "alice") },
		},
		"account id": {
			"auth.ParseUsers":        func(s string) error { return users("alice", "bank-a", s) },
			"config.Bank.Validate":   func(s string) error { return bankConfig("bank-a", s, "usd") },
			"client.ParseAccountRef": func(s string) error { return accountRef("bank-a", s) },
		},
		"client id": {
			"auth.ParseUsers": func(s string) error { return users(s, "bank-a", "alice") },
		},
		"currency": {
			"config.Bank.Validate": func(s string) error { return bankConfig("bank-a", "alice", s) },
			"client.ParseAmount":   func(s string) error { _, err := client.ParseAmount("1", s); return err },
		},
	}
	// Compared with the Go check, not with the table: when a rule changes in
	// names.proto (and the table with it), a consumer that kept a copy of the
	// old rule disagrees here.
	for _, c := range cases {
		want := kinds[c.kind].check(c.name) == nil
		for name, accept := range consumers[c.kind] {
			if err := accept(c.name); (err == nil) != want {
				t.Errorf("%s: %s %q: %v, want valid=%v", name, c.kind, c.name, err, want)
			}
		}
	}
}
