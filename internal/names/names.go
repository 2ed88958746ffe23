// Package names checks bank names, account and client ids, and currency
// codes against Remit's naming rules.
//
// The rules are defined once, as predefined protovalidate rules in
// proto/remit/names/v1/names.proto, and every API field that carries a name
// uses them. This package holds no pattern of its own: each function puts
// the name into a remit.names.v1.Names message and runs protovalidate on
// it, so config loading, the users file, the PKI, the SDK and the CLI accept
// exactly what the servers accept, and changing a rule in the proto changes
// it everywhere.
package names

import (
	"errors"
	"fmt"
	"strconv"

	"buf.build/go/protovalidate"

	namesv1 "github.com/remitpay/remit/gen/remit/names/v1"
)

// Error is returned for a name that breaks its rule. Its message is the
// rule's own, from the proto, e.g.
//
//	"Bank_A" must be a bank name: 1 to 63 lowercase letters, digits and dashes, not starting with a dash
type Error struct {
	// Value is the rejected name.
	Value string
	// Rule is the protovalidate rule id, e.g. "remit.bank_name"; the same id
	// a server puts in the violation of a request carrying the name.
	Rule string
	// Message is the rule's message, e.g. "must be a lowercase ISO 4217
	// currency code like usd".
	Message string
}

// Error returns the quoted name (truncated, so that hostile input cannot
// make its own error message megabytes long) followed by the rule.
func (e *Error) Error() string { return quoteShort(e.Value) + " " + e.Message }

// Bank reports whether name is a valid bank name, e.g. "bank-a": the rule of
// AccountRef.bank and RegisterBankRequest.name, and of the <name> in a bank
// certificate's remit://bank/<name> URI SAN. It returns nil or an [*Error].
func Bank(name string) error { return check(&namesv1.Names{BankName: &name}, name) }

// AccountID reports whether id is a valid account id, e.g. "alice": the
// rule of AccountRef.account_id and of every account_id a bank accepts. It
// returns nil or an [*Error].
func AccountID(id string) error { return check(&namesv1.Names{Id: &id}, id) }

// ClientID reports whether id is a valid client id (a login name), e.g.
// "alice": the rule of LoginRequest.client_id. Client ids follow the account
// id rule. It returns nil or an [*Error].
func ClientID(id string) error { return check(&namesv1.Names{Id: &id}, id) }

// Currency reports whether code is a lowercase ISO 4217 code, e.g. "usd":
// the rule of every currency field of a request. It returns nil or an
// [*Error].
func Currency(code string) error { return check(&namesv1.Names{Currency: &code}, code) }

// Text reports whether s is printable text for other people's screens: the
// rule of MakePaymentRequest.description (no control characters, line
// breaks or bidirectional formatting characters). It returns nil or an
// [*Error].
func Text(s string) error { return check(&namesv1.Names{Text: &s}, s) }

func check(msg *namesv1.Names, value string) error {
	err := protovalidate.Validate(msg)
	if err == nil {
		return nil
	}
	var verr *protovalidate.ValidationError
	if !errors.As(err, &verr) || len(verr.Violations) == 0 {
		// A compilation or runtime error means names.proto itself is
		// broken (this package's tests catch that); the name is refused.
		return fmt.Errorf("names: checking %s: %w", quoteShort(value), err)
	}
	v := verr.Violations[0].Proto
	return &Error{Value: value, Rule: v.GetRuleId(), Message: v.GetMessage()}
}

// quoteShort quotes s, truncated to a bounded length.
func quoteShort(s string) string {
	const limit = 80
	if len(s) <= limit {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:limit]) + "..."
}
