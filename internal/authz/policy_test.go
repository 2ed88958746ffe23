package authz_test

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/remitpay/remit/gen/remit/bank/v1"
	"github.com/remitpay/remit/gen/remit/bank/v1/bankv1connect"
	_ "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
	"github.com/remitpay/remit/internal/authz"
)

// procedures returns every procedure in the linked descriptors, keyed by
// "/package.Service/Method", with whether the service is one of Remit's.
//
// grpchealth and grpcreflect register their descriptors under a private
// "connectext." package while serving the standard names, and serve
// v1alpha reflection with the v1 descriptor; the standard names are added
// for them, derived from their exported service names.
func procedures(t *testing.T) map[string]bool {
	t.Helper()
	served := map[string][]string{
		"connectext." + grpchealth.HealthV1ServiceName:   {grpchealth.HealthV1ServiceName},
		"connectext." + grpcreflect.ReflectV1ServiceName: {grpcreflect.ReflectV1ServiceName, grpcreflect.ReflectV1AlphaServiceName},
	}
	all := map[string]bool{}
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		remit := strings.HasPrefix(string(fd.Package()), "remit.")
		services := fd.Services()
		for i := range services.Len() {
			sd := services.Get(i)
			names := []string{string(sd.FullName())}
			names = append(names, served[string(sd.FullName())]...)
			methods := sd.Methods()
			for j := range methods.Len() {
				for _, name := range names {
					all[fmt.Sprintf("/%s/%s", name, methods.Get(j).Name())] = remit
				}
			}
		}
		return true
	})
	return all
}

// TestPolicyCoversEveryProcedure is the guard behind default deny: a new RPC
// must get an explicit policy entry before it can be called at all, and
// the table must not keep entries for RPCs that were renamed or removed.
func TestPolicyCoversEveryProcedure(t *testing.T) {
	all := procedures(t)
	var remit int
	for proc, isRemit := range all {
		if !isRemit {
			continue
		}
		remit++
		if _, ok := authz.Policy[proc]; !ok {
			t.Errorf("procedure %s has no authz.Policy entry", proc)
		}
	}
	if remit < 16 {
		t.Errorf("found only %d Remit procedures; are the generated packages linked?", remit)
	}
	for proc, rule := range authz.Policy {
		if _, ok := all[proc]; !ok {
			t.Errorf("authz.Policy names %s, which no linked service defines", proc)
		}
		if !rule.Public && len(rule.Roles) == 0 {
			t.Errorf("authz.Policy[%s] allows nobody; remove the procedure or name its roles", proc)
		}
		if rule.Public && len(rule.Roles) > 0 {
			t.Errorf("authz.Policy[%s] is public and lists roles; pick one", proc)
		}
	}
}

var (
	everyone = []string{"anonymous", "customer", "admin", "auditor", "bank", "gateway"}
	clients  = []string{"customer", "admin", "auditor"}
)

// wantAllowed says which principals may call each procedure. It is written
// out independently of authz.Policy: it is the security requirement the
// table must meet (issue 4), checked by TestAuthorize and, over real TLS
// connections, by TestInterceptorMatrix.
var wantAllowed = map[string][]string{
	gatewayv1connect.AuthServiceLoginProcedure:                        everyone,
	gatewayv1connect.AuthServiceLogoutProcedure:                       clients,
	gatewayv1connect.PaymentServiceMakePaymentProcedure:               {"customer"},
	gatewayv1connect.PaymentServiceAcknowledgePaymentProcedure:        {"customer"},
	gatewayv1connect.PaymentServiceGetPaymentProcedure:                clients,
	gatewayv1connect.PaymentServiceListPaymentsProcedure:              clients,
	gatewayv1connect.PaymentServiceCheckBalanceProcedure:              clients,
	gatewayv1connect.PaymentServiceWatchPaymentsProcedure:             clients,
	gatewayv1connect.AdminServiceUpdateBalanceProcedure:               {"admin"},
	gatewayv1connect.AdminServiceListBanksProcedure:                   {"admin", "auditor"},
	gatewayv1connect.AdminServiceClearLoginLockoutProcedure:           {"admin"},
	gatewayv1connect.CoordinatorServiceRegisterBankProcedure:          {"bank"},
	gatewayv1connect.CoordinatorServiceGetTransactionOutcomeProcedure: {"bank"},
	bankv1connect.BankServicePrepareTransactionProcedure:              {"gateway"},
	bankv1connect.BankServiceCommitTransactionProcedure:               {"gateway"},
	bankv1connect.BankServicePrepareTransactionsProcedure:             {"gateway"},
	bankv1connect.BankServiceCommitTransactionsProcedure:              {"gateway"},
	bankv1connect.BankServiceUpdateBalanceProcedure:                   {"gateway"},
	bankv1connect.BankServiceGetBalanceProcedure:                      {"gateway"},
	// Issue 12: customers, accounts and refunds.
	gatewayv1connect.AuthServiceRegisterProcedure:           everyone,
	gatewayv1connect.AuthServiceChangePasswordProcedure:     clients,
	gatewayv1connect.PaymentServiceRefundPaymentProcedure:   {"customer", "admin"},
	gatewayv1connect.AdminServiceCreateUserProcedure:        {"admin"},
	gatewayv1connect.AdminServiceDisableUserProcedure:       {"admin"},
	gatewayv1connect.AdminServiceEnableUserProcedure:        {"admin"},
	gatewayv1connect.AdminServiceResetPasswordProcedure:     {"admin"},
	gatewayv1connect.AdminServiceListUsersProcedure:         {"admin", "auditor"},
	gatewayv1connect.AdminServiceListSessionsProcedure:      {"admin", "auditor"},
	gatewayv1connect.AdminServiceRevokeSessionsProcedure:    {"admin"},
	gatewayv1connect.AdminServiceOpenAccountProcedure:       {"admin"},
	gatewayv1connect.AdminServiceCloseAccountProcedure:      {"admin"},
	gatewayv1connect.AdminServiceListAccountsProcedure:      {"admin", "auditor"},
	bankv1connect.BankServiceOpenAccountProcedure:           {"gateway"},
	bankv1connect.BankServiceCloseAccountProcedure:          {"gateway"},
	bankv1connect.BankServiceListAccountsProcedure:          {"gateway"},
	bankv1connect.BankServiceConsumeEnrollmentCodeProcedure: {"gateway"},
}

func TestAuthorize(t *testing.T) {
	customer := &authz.Principal{Kind: authz.KindClient, ClientID: "alice", Roles: []authz.Role{authz.RoleCustomer},
		Account: &authz.Account{Bank: "bank-a", ID: "alice"}}
	admin := &authz.Principal{Kind: authz.KindClient, ClientID: "root", Roles: []authz.Role{authz.RoleAdmin}}
	auditor := &authz.Principal{Kind: authz.KindClient, ClientID: "eve", Roles: []authz.Role{authz.RoleAuditor}}
	bank := &authz.Principal{Kind: authz.KindBank, BankName: "bank-a", Roles: []authz.Role{authz.RoleBank}}
	gateway := &authz.Principal{Kind: authz.KindGateway, Roles: []authz.Role{authz.RoleGateway}}
	principals := []struct {
		name string
		p    *authz.Principal
	}{{"anonymous", nil}, {"customer", customer}, {"admin", admin}, {"auditor", auditor}, {"bank", bank}, {"gateway", gateway}}

	cases := maps.Clone(wantAllowed)
	cases["/remit.gateway.v1.PaymentService/Unknown"] = nil // default deny
	for proc, names := range cases {
		for _, pr := range principals {
			t.Run(proc+"/"+pr.name, func(t *testing.T) {
				err := authz.Authorize(authz.Policy, proc, pr.p)
				switch {
				case slices.Contains(names, pr.name):
					if err != nil {
						t.Errorf("denied: %v", err)
					}
				case pr.p == nil && names != nil:
					if !errors.Is(err, authz.ErrUnauthenticated) {
						t.Errorf("got %v, want ErrUnauthenticated", err)
					}
				default:
					if !errors.Is(err, authz.ErrPermissionDenied) {
						t.Errorf("got %v, want ErrPermissionDenied", err)
					}
				}
			})
		}
	}
	for proc := range procedures(t) {
		if _, ok := wantAllowed[proc]; !ok && strings.HasPrefix(proc, "/remit.") {
			t.Errorf("wantAllowed has no expectation for %s", proc)
		}
	}
}

func TestPrincipalHelpers(t *testing.T) {
	alice := &authz.Principal{Kind: authz.KindClient, ClientID: "alice", Roles: []authz.Role{authz.RoleCustomer},
		Account: &authz.Account{Bank: "bank-a", ID: "alice"}}
	auditor := &authz.Principal{Kind: authz.KindClient, ClientID: "eve", Roles: []authz.Role{authz.RoleAuditor}}
	bankA := &authz.Principal{Kind: authz.KindBank, BankName: "bank-a", Roles: []authz.Role{authz.RoleBank}}
	var nobody *authz.Principal

	tests := []struct {
		name string
		got  bool
		want bool
	}{
		{"alice owns her account", alice.Owns("bank-a", "alice"), true},
		{"alice does not own bob's", alice.Owns("bank-a", "bob"), false},
		{"alice does not own alice at another bank", alice.Owns("bank-b", "alice"), false},
		{"alice reads her account", alice.CanRead("bank-a", "alice"), true},
		{"alice cannot read bob's", alice.CanRead("bank-a", "bob"), false},
		{"alice is not staff", alice.IsStaff(), false},
		{"auditor is staff", auditor.IsStaff(), true},
		{"auditor reads bob's", auditor.CanRead("bank-a", "bob"), true},
		{"auditor owns nothing", auditor.Owns("bank-a", "bob"), false},
		{"bank-a is bank-a", bankA.IsBank("bank-a"), true},
		{"bank-a is not bank-b", bankA.IsBank("bank-b"), false},
		{"a customer is no bank", alice.IsBank(""), false},
		{"bank owns no account", bankA.Owns("bank-a", "alice"), false},
		{"nil has no role", nobody.HasRole(authz.RoleCustomer), false},
		{"nil is not staff", nobody.IsStaff(), false},
		{"nil owns nothing", nobody.Owns("bank-a", "alice"), false},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	if got := bankA.Name(); got != "bank-a" {
		t.Errorf("bank Name() = %q", got)
	}
	if got := alice.RoleString(); got != "customer" {
		t.Errorf("RoleString() = %q", got)
	}
}

func TestSourceOf(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"192.0.2.7:51234", "192.0.2.7"},
		{"192.0.2.7", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:443", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1%eth0]:443", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::9", "2001:db8:1:2::/64"},
		{"pipe", "pipe"},
	}
	for _, tt := range tests {
		if got := authz.SourceOf(tt.addr); got != tt.want {
			t.Errorf("SourceOf(%q) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

func ExampleAuthorize() {
	alice := &authz.Principal{Kind: authz.KindClient, ClientID: "alice", Roles: []authz.Role{authz.RoleCustomer}}
	fmt.Println(authz.Authorize(authz.Policy, gatewayv1connect.PaymentServiceMakePaymentProcedure, alice))
	fmt.Println(authz.Authorize(authz.Policy, gatewayv1connect.AdminServiceUpdateBalanceProcedure, alice))
	fmt.Println(authz.Authorize(authz.Policy, gatewayv1connect.AdminServiceUpdateBalanceProcedure, nil))
	// Output:
	// <nil>
	// authz: permission denied
	// authz: missing or invalid credentials
}
