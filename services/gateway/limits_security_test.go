package gateway_test

import (
	"context"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"google.golang.org/protobuf/reflect/protoreflect"

	bankv1 "github.com/remitpay/remit/gen/remit/bank/v1"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/internal/rpcerr"
	"github.com/remitpay/remit/internal/serve"
	"github.com/remitpay/remit/internal/serve/servetest"
	"github.com/remitpay/remit/services/gateway/gatewaytest"
)

// TestSecurityLimitsOnRealServers replays the review's attacks on a real
// gateway and its banks: a gzip bomb to every health and reflection
// endpoint, an unknown service name the size of the limit, and more
// anonymous Watch streams than one source may hold.
func TestSecurityLimitsOnRealServers(t *testing.T) {
	n := gatewaytest.Start(t, gatewaytest.Options{})
	layout := pki.NewLayout(filepath.Join(n.Dir, "certs"))
	anonTLS, err := pki.ClientConfig(layout.CA, "", "")
	if err != nil {
		t.Fatal(err)
	}
	anon := serve.NewHTTP2Client(anonTLS)
	t.Cleanup(anon.CloseIdleConnections)
	gw := n.CertHTTPClient(t, pki.GatewayName) // banks serve certificate holders only
	t.Cleanup(gw.CloseIdleConnections)

	bomb := servetest.Bomb(100 << 20) // 100 KB that inflates to 100 MiB
	type target struct {
		name, url string
		client    *http.Client
	}
	targets := []target{{"gateway", n.Gateway.URL, anon}}
	for _, name := range gatewaytest.BankNames {
		targets = append(targets, target{name, n.Banks[name].URL(), gw})
	}
	procedures := []string{
		"/" + grpchealth.HealthV1ServiceName + "/Check",
		"/" + grpchealth.HealthV1ServiceName + "/Watch",
		"/" + grpcreflect.ReflectV1ServiceName + "/ServerReflectionInfo",
		"/" + grpcreflect.ReflectV1AlphaServiceName + "/ServerReflectionInfo",
	}
	for _, target := range targets {
		client := target.client
		for _, proc := range procedures {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			a, err := servetest.PostGzip(t.Context(), client, target.url, proc, connect.ProtocolGRPC, bomb)
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatalf("%s %s: %v", target.name, proc, err)
			}
			if a.Code != connect.CodeResourceExhausted || len(a.Message) > 200 || strings.Contains(a.Message, "AAAA") {
				t.Errorf("%s %s: %v %.200q, want a short resource_exhausted", target.name, proc, a.Code, a.Message)
			}
			if grown := after.TotalAlloc - before.TotalAlloc; grown > 20<<20 {
				t.Errorf("%s %s: the processes allocated %d MiB refusing the bomb", target.name, proc, grown>>20)
			}
		}

		health := grpchealth.NewClient(client, target.url, connect.WithGRPC())
		_, err := health.Check(t.Context(), &grpchealth.CheckRequest{Service: strings.Repeat("A", serve.MountReadMaxBytes-16)})
		if connect.CodeOf(err) != connect.CodeNotFound || len(err.Error()) > 200 {
			t.Errorf("%s: unknown service: %.200v, want a short not_found", target.name, err)
		}
	}

	// The gateway holds at most DefaultMaxAnonymousStreams anonymous
	// streams per source.
	health := grpchealth.NewClient(anon, n.Gateway.URL, connect.WithGRPC())
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for i := range serve.DefaultMaxAnonymousStreams {
		if ev := <-health.Watch(ctx, &grpchealth.CheckRequest{}); ev.Err != nil {
			t.Fatalf("anonymous stream %d: %v", i+1, ev.Err)
		}
	}
	ev := <-health.Watch(ctx, &grpchealth.CheckRequest{})
	if connect.CodeOf(ev.Err) != connect.CodeResourceExhausted || rpcerr.Reason(ev.Err) != serve.ReasonTooManyStreams {
		t.Fatalf("anonymous stream %d: %v, want resource_exhausted %s", serve.DefaultMaxAnonymousStreams+1, ev.Err, serve.ReasonTooManyStreams)
	}
	// A client certificate is an identity: its streams are not anonymous.
	if ev := <-grpchealth.NewClient(gw, n.Gateway.URL, connect.WithGRPC()).Watch(ctx, &grpchealth.CheckRequest{}); ev.Err != nil {
		t.Fatalf("stream with a client certificate: %v", ev.Err)
	}
}

// TestSecurityBodyDeadlineSparesStreams checks that every streaming RPC of
// the gateway's and the banks' services is recognised as one, so that the
// unary body deadline never cuts a stream.
func TestSecurityBodyDeadlineSparesStreams(t *testing.T) {
	streams := 0
	for _, fd := range []protoreflect.FileDescriptor{
		gatewayv1.File_remit_gateway_v1_admin_proto, gatewayv1.File_remit_gateway_v1_auth_proto,
		gatewayv1.File_remit_gateway_v1_coordinator_proto, gatewayv1.File_remit_gateway_v1_payment_proto,
		bankv1.File_remit_bank_v1_bank_proto,
	} {
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			for j := range sd.Methods().Len() {
				md := sd.Methods().Get(j)
				path := "/" + string(sd.FullName()) + "/" + string(md.Name())
				want := md.IsStreamingClient() || md.IsStreamingServer()
				if got := serve.IsStreaming(path); got != want {
					t.Errorf("IsStreaming(%s) = %v, want %v", path, got, want)
				}
				if want {
					streams++
				}
			}
		}
	}
	if streams == 0 {
		t.Fatal("no streaming procedure found: the test checks nothing")
	}
}
