package bank_test

import (
	"runtime"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"

	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/internal/serve"
	"github.com/remitpay/remit/internal/serve/servetest"
)

// TestBankSecurityDecompressionBomb sends a real bank the review's gzip
// bomb (100 KB that inflates to 100 MiB) on its health and reflection
// endpoints, and an unknown service name as long as they accept: each is
// refused with a short error, without the bank inflating the bomb.
func TestBankSecurityDecompressionBomb(t *testing.T) {
	layout := certs(t)
	url := secRunBank(t, layout, "bank-a")
	client := secHTTP(t, secClientTLS(t, layout, pki.GatewayName))
	bomb := servetest.Bomb(100 << 20)
	for _, proc := range []string{
		"/" + grpchealth.HealthV1ServiceName + "/Check",
		"/" + grpchealth.HealthV1ServiceName + "/Watch",
		"/" + grpcreflect.ReflectV1ServiceName + "/ServerReflectionInfo",
		"/" + grpcreflect.ReflectV1AlphaServiceName + "/ServerReflectionInfo",
	} {
		for _, protocol := range []string{connect.ProtocolGRPC, connect.ProtocolConnect} {
			if protocol == connect.ProtocolConnect && !strings.HasSuffix(proc, "/Check") {
				continue // Connect unary only
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			a, err := servetest.PostGzip(t.Context(), client, url, proc, protocol, bomb)
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatalf("%s %s: %v", protocol, proc, err)
			}
			if a.Code != connect.CodeResourceExhausted || len(a.Message) > 200 || strings.Contains(a.Message, "AAAA") {
				t.Errorf("%s %s: %v %.200q, want a short resource_exhausted", protocol, proc, a.Code, a.Message)
			}
			if grown := after.TotalAlloc - before.TotalAlloc; grown > 20<<20 {
				t.Errorf("%s %s: the bank allocated %d MiB refusing the bomb", protocol, proc, grown>>20)
			}
		}
	}
	_, err := grpchealth.NewClient(client, url).Check(t.Context(), &grpchealth.CheckRequest{Service: strings.Repeat("A", serve.MountReadMaxBytes-16)})
	if connect.CodeOf(err) != connect.CodeNotFound || len(err.Error()) > 200 {
		t.Errorf("unknown service: %.200v, want a short not_found", err)
	}
}
