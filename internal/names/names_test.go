package names_test

import (
	"errors"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	bankv1 "github.com/remitpay/remit/gen/remit/bank/v1"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/names"
)

// kind is one naming rule: its Go check, the protovalidate rule id, and API
// messages that carry a name of that kind in a field with the rule (every
// other field valid), so the table below runs the same name through Go and
// through every request type that the servers validate.
type kind struct {
	check    func(string) error
	rule     string
	messages map[string]func(string) proto.Message
}

const txID = "0b8e5a9c-8f1d-4c7e-9a4e-2d1f0c3b5a6e"

var kinds = map[string]kind{
	"bank": {
		check: names.Bank,
		rule:  "remit.bank_name",
		messages: map[string]func(string) proto.Message{
			"gateway AccountRef.bank": func(s string) proto.Message {
				return &gatewayv1.AccountRef{Bank: s, AccountId: "alice"}
			},
			"gateway RegisterBankRequest.name": func(s string) proto.Message {
				return &gatewayv1.RegisterBankRequest{Name: s, Url: "https://127.0.0.1:8444"}
			},
			"gateway MakePaymentRequest.payee.bank": func(s string) proto.Message {
				return &gatewayv1.MakePaymentRequest{TransactionId: txID, Amount: 1, Currency: "usd",
					Payee: &gatewayv1.AccountRef{Bank: s, AccountId: "alice"}}
			},
		},
	},
	"account id": {
		check: names.AccountID,
		rule:  "remit.id",
		messages: map[string]func(string) proto.Message{
			"gateway AccountRef.account_id": func(s string) proto.Message {
				return &gatewayv1.AccountRef{Bank: "bank-a", AccountId: s}
			},
			"bank GetBalanceRequest.account_id": func(s string) proto.Message {
				return &bankv1.GetBalanceRequest{AccountId: s}
			},
			"bank UpdateBalanceRequest.account_id": func(s string) proto.Message {
				return &bankv1.UpdateBalanceRequest{TransactionId: txID, AccountId: s,
					Direction: bankv1.Direction_DIRECTION_CREDIT, Amount: 1, Currency: "usd"}
			},
			"bank PrepareTransactionRequest.legs.account_id": func(s string) proto.Message {
				return &bankv1.PrepareTransactionRequest{TransactionId: txID, ExpireTime: timestamppb.Now(),
					Legs: []*bankv1.Leg{{AccountId: s, Direction: bankv1.Direction_DIRECTION_DEBIT, Amount: 1, Currency: "usd"}}}
			},
		},
	},
	"client id": {
		check: names.ClientID,
		rule:  "remit.id",
		messages: map[string]func(string) proto.Message{
			"gateway LoginRequest.client_id": func(s string) proto.Message {
				return &gatewayv1.LoginRequest{ClientId: s, Password: "pw"}
			},
		},
	},
	"currency": {
		check: names.Currency,
		rule:  "remit.currency",
		messages: map[string]func(string) proto.Message{
			"gateway MakePaymentRequest.currency": func(s string) proto.Message {
				return &gatewayv1.MakePaymentRequest{TransactionId: txID, Amount: 1, Currency: s,
					Payee: &gatewayv1.AccountRef{Bank: "bank-a", AccountId: "alice"}}
			},
			"gateway UpdateBalanceRequest.currency": func(s string) proto.Message {
				return &gatewayv1.UpdateBalanceRequest{TransactionId: txID, Amount: 1, Currency: s,
					Direction: gatewayv1.Direction_DIRECTION_CREDIT,
					Account:   &gatewayv1.AccountRef{Bank: "bank-a", AccountId: "alice"}}
			},
			"bank UpdateBalanceRequest.currency": func(s string) proto.Message {
				return &bankv1.UpdateBalanceRequest{TransactionId: txID, AccountId: "alice",
					Direction: bankv1.Direction_DIRECTION_CREDIT, Amount: 1, Currency: s}
			},
			"bank PrepareTransactionRequest.legs.currency": func(s string) proto.Message {
				return &bankv1.PrepareTransactionRequest{TransactionId: txID, ExpireTime: timestamppb.Now(),
					Legs: []*bankv1.Leg{{AccountId: "alice", Direction: bankv1.Direction_DIRECTION_DEBIT, Amount: 1, Currency: s}}}
			},
		},
	},
	"text": {
		check: names.Text,
		rule:  "remit.text",
		messages: map[string]func(string) proto.Message{
			"gateway MakePaymentRequest.description": func(s string) proto.Message {
				return &gatewayv1.MakePaymentRequest{TransactionId: txID, Amount: 1, Currency: "usd",
					Payee: &gatewayv1.AccountRef{Bank: "bank-a", AccountId: "alice"}, Description: s}
			},
		},
	},
}

// nameCase is one name and whether its kind's rule accepts it.
type nameCase struct {
	kind  string
	name  string
	valid bool
}

var cases = []nameCase{
	{"bank", "bank-a", true},
	{"bank", "a", true},
	{"bank", "0", true},
	{"bank", "9lives", true},
	{"bank", "b--c", true},
	{"bank", "bank-", true}, // a trailing dash is allowed (it always was)
	{"bank", "a" + strings.Repeat("b", 62), true},
	{"bank", "", false},
	{"bank", "a" + strings.Repeat("b", 63), false}, // 64 characters
	{"bank", "-bank", false},
	{"bank", "Bank-a", false},
	{"bank", "BANK", false},
	{"bank", "bank_a", false},
	{"bank", "bank.a", false},
	{"bank", "bank a", false},
	{"bank", "bank/a", false},
	{"bank", "bänk", false},
	{"bank", "ｂank", false}, // fullwidth b
	{"bank", "bank-a\n", false},
	{"bank", "\nbank-a", false},
	{"bank", "bank\x00", false},
	{"bank", "bank\xff", false}, // invalid UTF-8

	{"account id", "alice", true},
	{"account id", "Alice", true},
	{"account id", "A", true},
	{"account id", "0", true},
	{"account id", "a.b_c-d", true},
	{"account id", "a.", true},
	{"account id", "a..", true},
	{"account id", "a" + strings.Repeat("_", 63), true}, // 64 characters
	{"account id", "", false},
	{"account id", "a" + strings.Repeat("b", 64), false}, // 65 characters
	{"account id", ".alice", false},
	{"account id", "_alice", false},
	{"account id", "-alice", false},
	{"account id", "al ice", false},
	{"account id", "a/b", false},
	{"account id", "a+b", false},
	{"account id", "a@b", false},
	{"account id", "alïce", false},
	{"account id", "é", false},
	{"account id", "alice\n", false},
	{"account id", "alice\xff", false},

	{"client id", "alice", true},
	{"client id", "Ops.Admin-1", true},
	{"client id", "", false},
	{"client id", "al ice", false},
	{"client id", "ålice", false},
	{"client id", strings.Repeat("a", 65), false},

	{"currency", "usd", true},
	{"currency", "jpy", true},
	{"currency", "xxx", true},
	{"currency", "", false},
	{"currency", "USD", false},
	{"currency", "Usd", false},
	{"currency", "us", false},
	{"currency", "usdd", false},
	{"currency", "us1", false},
	{"currency", "u-d", false},
	{"currency", " usd", false},
	{"currency", "usd\n", false},
	{"currency", "üsd", false},
	{"currency", "ｕｓｄ", false},

	{"text", "", true},
	{"text", "rent for march", true},
	{"text", "Miete für März: 50 € — danke!", true},
	{"text", "家賃 ☕ 👩‍👩‍👧 (family, with zero-width joiners)", true}, //nolint:gosmopolitan // other scripts are the point
	{"text", "quotes \" ' and backslashes \\x1b are text", true},
	{"text", "\u00ad soft hyphen and \u200b zero-width space", true},
	{"text", "\x1b[2J\x1b[31mPAY ADMIN NOW\x1b[0m", false}, // the review's description
	{"text", "line one\nfake line", false},
	{"text", "carriage\rreturn", false},
	{"text", "tab\there", false},
	{"text", "bell\a", false},
	{"text", "nul\x00", false},
	{"text", "del\x7f", false},
	{"text", "c1 csi \u009b2J", false},
	{"text", "c1 next line \u0085", false},
	{"text", "line separator \u2028", false},
	{"text", "paragraph separator \u2029", false},
	{"text", "right-to-left override \u202e", false},
	{"text", "left-to-right embedding \u202a", false},
	{"text", "first strong isolate \u2068", false},
	{"text", "pop directional isolate \u2069", false},
	{"text", "left-to-right mark \u200e", false},
	{"text", "right-to-left mark \u200f", false},
	{"text", "arabic letter mark \u061c", false},
}

// TestGoAndProtovalidateAgree checks every case with the Go function and
// with protovalidate on every API message that carries a name of that kind:
// both read the one rule in names.proto, so they must agree.
func TestGoAndProtovalidateAgree(t *testing.T) {
	for _, c := range cases {
		k := kinds[c.kind]
		err := k.check(c.name)
		if (err == nil) != c.valid {
			t.Errorf("%s %q: Go check = %v, want valid=%v", c.kind, c.name, err, c.valid)
		}
		if err != nil {
			var nerr *names.Error
			if !errors.As(err, &nerr) || nerr.Value != c.name || nerr.Rule != k.rule || nerr.Message == "" {
				t.Errorf("%s %q: error %#v, want a *names.Error for rule %s", c.kind, c.name, err, k.rule)
			}
		}
		for msgName, build := range k.messages {
			verr := protovalidate.Validate(build(c.name))
			if (verr == nil) != c.valid {
				t.Errorf("%s %q: protovalidate on %s = %v, want valid=%v", c.kind, c.name, msgName, verr, c.valid)
			}
		}
	}
}

// TestErrorMessage checks the message a user reads: the quoted name and the
// rule's message from names.proto, with hostile input truncated.
func TestErrorMessage(t *testing.T) {
	const want = `"Bank_A" must be a bank name: 1 to 63 lowercase letters, digits and dashes, not starting with a dash`
	if err := names.Bank("Bank_A"); err == nil || err.Error() != want {
		t.Errorf("Bank(Bank_A) = %v, want %s", err, want)
	}
	long := strings.Repeat("x", 1<<20)
	if err := names.AccountID(long); err == nil || len(err.Error()) > 300 {
		t.Errorf("AccountID(1 MiB) error is %d bytes, want a short one", len(err.Error()))
	}
}

// The rules as every copy spelt them before names.proto existed. The
// refactor that introduced names.proto promised to accept exactly the same
// names; TestSameAsBefore keeps that promise checked. Changing a rule on
// purpose means changing names.proto and these together.
var before = map[string]*regexp.Regexp{
	"bank":       regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`),
	"account id": regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`),
	"client id":  regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`),
	"currency":   regexp.MustCompile(`^[a-z]{3}$`),
	// text is newer than names.proto: no older spelling to agree with.
}

func TestSameAsBefore(t *testing.T) {
	for _, c := range cases {
		if before[c.kind] == nil {
			continue
		}
		if got := before[c.kind].MatchString(c.name); got != c.valid {
			t.Errorf("%s %q: old pattern says %v, table says %v", c.kind, c.name, got, c.valid)
		}
	}
	// Random names built from the characters at the rules' edges, at the
	// lengths at the rules' edges.
	alphabet := []string{"a", "z", "A", "Z", "0", "9", "-", "_", ".", " ", "/", "\n", "é", "\xff", "ｂ"}
	r := rand.New(rand.NewPCG(1, 2))
	n := 3000
	if testing.Short() {
		n = 300
	}
	for range n {
		var b strings.Builder
		for range r.IntN(67) {
			// Mostly valid characters, so that long valid names occur too.
			if r.IntN(20) == 0 {
				b.WriteString(alphabet[r.IntN(len(alphabet))])
			} else {
				b.WriteString(alphabet[r.IntN(6)])
			}
		}
		s := b.String()
		if r.IntN(2) == 0 {
			s = strings.ToLower(s)
		}
		for name, k := range kinds {
			if before[name] == nil {
				continue
			}
			if got, want := k.check(s) == nil, before[name].MatchString(s); got != want {
				t.Errorf("%s %q: names says valid=%v, old pattern says %v", name, s, got, want)
			}
		}
	}
}

func FuzzSameAsBefore(f *testing.F) {
	for _, c := range cases {
		f.Add(c.name)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for name, k := range kinds {
			if before[name] == nil {
				continue
			}
			if got, want := k.check(s) == nil, before[name].MatchString(s); got != want {
				t.Errorf("%s %q: names says valid=%v, old pattern says %v", name, s, got, want)
			}
		}
	})
}

func BenchmarkBank(b *testing.B) {
	for b.Loop() {
		if names.Bank("bank-a") != nil {
			b.Fatal("bank-a refused")
		}
	}
}

func BenchmarkBankInvalid(b *testing.B) {
	for b.Loop() {
		if names.Bank("Bank_A") == nil {
			b.Fatal("Bank_A accepted")
		}
	}
}
