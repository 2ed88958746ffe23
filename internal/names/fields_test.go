package names_test

import (
	"slices"
	"strings"
	"testing"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/remitpay/remit/gen/remit/bank/v1"
	_ "github.com/remitpay/remit/gen/remit/gateway/v1"
	namesv1 "github.com/remitpay/remit/gen/remit/names/v1"
)

// nameRule returns the names.proto rule a field must carry, judged by its
// name, or nil for a field that carries no name.
func nameRule(fd protoreflect.FieldDescriptor) protoreflect.ExtensionType {
	if fd.Kind() != protoreflect.StringKind {
		return nil
	}
	switch fd.Name() {
	case "bank", "bank_name":
		return namesv1.E_BankName
	case "account_id", "client_id":
		return namesv1.E_Id
	case "currency":
		return namesv1.E_Currency
	case "description":
		return namesv1.E_Text
	case "name":
		if fd.ContainingMessage().Name() == "RegisterBankRequest" {
			return namesv1.E_BankName
		}
	}
	return nil
}

// stringRules returns the protovalidate string rules of fd, with predefined
// extensions resolved.
func stringRules(t *testing.T, fd protoreflect.FieldDescriptor) *validate.StringRules {
	t.Helper()
	rules, _ := proto.GetExtension(fd.Options(), validate.E_Field).(*validate.FieldRules)
	str := rules.GetString()
	if str == nil {
		return nil
	}
	if unknown := str.ProtoReflect().GetUnknown(); len(unknown) > 0 {
		str = proto.CloneOf(str)
		str.ProtoReflect().SetUnknown(nil)
		opts := proto.UnmarshalOptions{Resolver: protoregistry.GlobalTypes, Merge: true}
		if err := opts.Unmarshal(unknown, str); err != nil {
			t.Fatalf("%s: %v", fd.FullName(), err)
		}
	}
	return str
}

// requestMessages returns every message reachable from the request of an
// RPC in a remit.* package: the messages whose fields the servers validate.
func requestMessages() map[protoreflect.FullName]protoreflect.MessageDescriptor {
	seen := map[protoreflect.FullName]protoreflect.MessageDescriptor{}
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		if _, ok := seen[md.FullName()]; ok || !strings.HasPrefix(string(md.FullName()), "remit.") {
			return
		}
		seen[md.FullName()] = md
		for i := range md.Fields().Len() {
			if m := md.Fields().Get(i).Message(); m != nil {
				walk(m)
			}
		}
	}
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			methods := fd.Services().Get(i).Methods()
			for j := range methods.Len() {
				walk(methods.Get(j).Input())
			}
		}
		return true
	})
	return seen
}

// TestEveryNameFieldUsesSharedRule walks every field of every request
// message of the API and fails if a field that carries a bank name, an
// account or client id or a currency does not use the rule of names.proto,
// or if any field spells a pattern of its own (naming rules live in
// names.proto only).
func TestEveryNameFieldUsesSharedRule(t *testing.T) {
	var found []string
	for _, md := range requestMessages() {
		for i := range md.Fields().Len() {
			fd := md.Fields().Get(i)
			str := stringRules(t, fd)
			if str.HasPattern() {
				t.Errorf("%s has its own string.pattern %q: naming rules live in proto/remit/names/v1/names.proto", fd.FullName(), str.GetPattern())
			}
			want := nameRule(fd)
			if want == nil {
				continue
			}
			if !proto.HasExtension(str, want) || !proto.GetExtension(str, want).(bool) {
				t.Errorf("%s carries a name but not (buf.validate.field).string.(%s) = true", fd.FullName(), want.TypeDescriptor().FullName())
				continue
			}
			for _, other := range []protoreflect.ExtensionType{namesv1.E_BankName, namesv1.E_Id, namesv1.E_Currency, namesv1.E_Text} {
				if other != want && proto.HasExtension(str, other) {
					t.Errorf("%s carries a second naming rule, %s", fd.FullName(), other.TypeDescriptor().FullName())
				}
			}
			found = append(found, string(fd.FullName()))
		}
	}
	// The fields that carry a name today: the walk must find at least these,
	// or it is not looking where the names are.
	for _, f := range []string{
		"remit.gateway.v1.AccountRef.bank",
		"remit.gateway.v1.AccountRef.account_id",
		"remit.gateway.v1.RegisterBankRequest.name",
		"remit.gateway.v1.LoginRequest.client_id",
		"remit.gateway.v1.MakePaymentRequest.currency",
		"remit.gateway.v1.MakePaymentRequest.description",
		"remit.gateway.v1.UpdateBalanceRequest.currency",
		"remit.bank.v1.Leg.account_id",
		"remit.bank.v1.Leg.currency",
		"remit.bank.v1.UpdateBalanceRequest.account_id",
		"remit.bank.v1.UpdateBalanceRequest.currency",
		"remit.bank.v1.GetBalanceRequest.account_id",
	} {
		if !slices.Contains(found, f) {
			t.Errorf("the walk did not find %s with its naming rule", f)
		}
	}
}

// TestNoPatternAnywhere also covers messages no request reaches (responses,
// stored types): none may spell a naming pattern of its own either.
func TestNoPatternAnywhere(t *testing.T) {
	protoregistry.GlobalFiles.RangeFiles(func(file protoreflect.FileDescriptor) bool {
		if !strings.HasPrefix(string(file.Package()), "remit.") {
			return true
		}
		var walk func(protoreflect.MessageDescriptors)
		walk = func(msgs protoreflect.MessageDescriptors) {
			for i := range msgs.Len() {
				md := msgs.Get(i)
				for j := range md.Fields().Len() {
					fd := md.Fields().Get(j)
					if str := stringRules(t, fd); str.HasPattern() {
						t.Errorf("%s has its own string.pattern %q: naming rules live in proto/remit/names/v1/names.proto", fd.FullName(), str.GetPattern())
					}
				}
				walk(md.Messages())
			}
		}
		walk(file.Messages())
		return true
	})
}
