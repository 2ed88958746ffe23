package serve_test

import (
	"bytes"
	"encoding/binary"

	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/remitpay/remit/gen/remit/bank/v1/bankv1connect"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
	"github.com/remitpay/remit/internal/serve"
)

// publicMethods lists every RPC of every Remit service, from the generated
// descriptors, so a new RPC is fuzzed without editing this file.
func publicMethods(tb testing.TB) []protoreflect.MethodDescriptor {
	tb.Helper()
	var out []protoreflect.MethodDescriptor
	for _, name := range []string{
		gatewayv1connect.AuthServiceName, gatewayv1connect.PaymentServiceName,
		gatewayv1connect.AdminServiceName, gatewayv1connect.CoordinatorServiceName,
		bankv1connect.BankServiceName,
	} {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
		if err != nil {
			tb.Fatal(err)
		}
		methods := d.(protoreflect.ServiceDescriptor).Methods()
		for i := range methods.Len() {
			out = append(out, methods.Get(i))
		}
	}
	return out
}

// fuzzMux serves every service with the real handler chain (recover, log,
// validate) in front of the generated Unimplemented handlers: a request that
// reaches a method answers "unimplemented".
func fuzzMux() http.Handler {
	opts := serve.HandlerOptions(slog.New(slog.DiscardHandler))
	mux := http.NewServeMux()
	mux.Handle(gatewayv1connect.NewAuthServiceHandler(gatewayv1connect.UnimplementedAuthServiceHandler{}, opts...))
	mux.Handle(gatewayv1connect.NewPaymentServiceHandler(gatewayv1connect.UnimplementedPaymentServiceHandler{}, opts...))
	mux.Handle(gatewayv1connect.NewAdminServiceHandler(gatewayv1connect.UnimplementedAdminServiceHandler{}, opts...))
	mux.Handle(gatewayv1connect.NewCoordinatorServiceHandler(gatewayv1connect.UnimplementedCoordinatorServiceHandler{}, opts...))
	mux.Handle(bankv1connect.NewBankServiceHandler(bankv1connect.UnimplementedBankServiceHandler{}, opts...))
	return mux
}

// FuzzRequestDecodingAndValidation sends arbitrary bytes, as binary protobuf
// or JSON, to every RPC through the real decoding and validation chain. It
// checks that nothing panics or fails internally, and that a request reaches
// a handler if and only if it decodes and satisfies its protovalidate rules:
// validation always runs before any handler.
func FuzzRequestDecodingAndValidation(f *testing.F) {
	methods := publicMethods(f)
	f.Add(uint8(0), false, []byte(`{"clientId":"alice","password":"pw"}`))
	f.Add(uint8(2), false, []byte(`{"transactionId":"0b5a3c3e-6f7e-4c1a-9d8e-3f2a1b0c9d8e","payee":{"bank":"bank-b","accountId":"bob"},"amount":"1250","currency":"usd"}`))
	f.Add(uint8(2), false, []byte(`{"transactionId":"not-a-uuid","amount":"-5","currency":"USD"}`))
	f.Add(uint8(6), false, []byte(`{"afterEventId":"3"}`))
	f.Add(uint8(2), true, []byte{0x0a, 0x24})
	f.Add(uint8(14), true, []byte{})
	mux := fuzzMux()
	f.Fuzz(func(t *testing.T, which uint8, binaryCodec bool, body []byte) {
		md := methods[int(which)%len(methods)]
		msg := dynamicpb.NewMessage(md.Input())
		var decodeErr error
		contentType := "application/json"
		if binaryCodec {
			contentType = "application/proto"
			decodeErr = proto.Unmarshal(body, msg)
		} else {
			decodeErr = protojsonUnmarshal(body, msg, md.IsStreamingServer())
		}
		valid := decodeErr == nil && protovalidate.Validate(msg) == nil

		path := "/" + string(md.Parent().FullName()) + "/" + string(md.Name())
		payload := body
		if md.IsStreamingServer() {
			contentType = strings.Replace(contentType, "application/", "application/connect+", 1)
			// The Connect streaming envelope: flags byte, big-endian length.
			payload = binary.BigEndian.AppendUint32([]byte{0}, uint32(len(body))) //nolint:gosec // G115: a fuzz body is far below 4 GiB
			payload = append(payload, body...)
		}
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(payload))
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Connect-Protocol-Version", "1")
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)

		out := rec.Body.String()
		reached := strings.Contains(out, `"code":"unimplemented"`)
		if strings.Contains(out, `"code":"internal"`) || strings.Contains(out, `"code":"unknown"`) {
			t.Fatalf("%s: internal failure for input %q: %s", path, body, out)
		}
		if reached != valid {
			t.Fatalf("%s: reached handler=%v but decodes-and-validates=%v (decode err %v) for %q: %s",
				path, reached, valid, decodeErr, body, out)
		}
		if !reached && !strings.Contains(out, `"code":"invalid_argument"`) {
			t.Fatalf("%s: rejected input without invalid_argument: %s", path, out)
		}
	})
}
