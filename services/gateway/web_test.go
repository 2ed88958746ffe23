package gateway_test

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/internal/serve"
	"github.com/remitpay/remit/services/gateway/gatewaytest"
	"github.com/remitpay/remit/web"
)

// browserClient is a client without a certificate, as a browser is.
func browserClient(t *testing.T, n *gatewaytest.Network) *http.Client {
	t.Helper()
	conf, err := pki.ClientConfig(filepath.Join(n.Dir, "certs", "ca.pem"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	return serve.NewHTTP2Client(conf)
}

// do sends one request and returns the answer's status, headers and body.
func do(t *testing.T, c *http.Client, method, url string, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	_ = res.Body.Close() // read in full; the read's error is the one that counts
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header, string(body)
}

// securityHeaders are on every answer of the wallet's handler.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
		"img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
	"X-Content-Type-Options": "nosniff",
	"Referrer-Policy":        "no-referrer",
	"X-Frame-Options":        "DENY",
}

// TestWebPageHeaders: the gateway serves the wallet at "/" with a strict
// CSP and the other security headers, revalidated by ETag; other paths and
// methods are refused, and the API's routes still win.
func TestWebPageHeaders(t *testing.T) {
	n := gatewaytest.Start(t, gatewaytest.Options{})
	c := browserClient(t, n)
	base := n.Gateway.URL

	cases := []struct {
		path, method string
		status       int
		contentType  string
		cache        string
	}{
		{"/", http.MethodGet, 200, "text/html; charset=utf-8", "no-cache"},
		{"/index.html", http.MethodGet, 200, "text/html; charset=utf-8", "no-cache"},
		{"/app.js", http.MethodGet, 200, "text/javascript; charset=utf-8", "no-cache"},
		{"/app.css", http.MethodGet, 200, "text/css; charset=utf-8", "no-cache"},
		{"/app.js", http.MethodHead, 200, "text/javascript; charset=utf-8", "no-cache"},
		{"/nope", http.MethodGet, 404, "text/plain; charset=utf-8", "no-store"},
		{"/embed.go", http.MethodGet, 404, "text/plain; charset=utf-8", "no-store"},
		{"/dist/app.js", http.MethodGet, 404, "text/plain; charset=utf-8", "no-store"},
		{"/", http.MethodPost, 405, "text/plain; charset=utf-8", "no-store"},
	}
	for _, tc := range cases {
		status, hdr, _ := do(t, c, tc.method, base+tc.path, nil)
		if status != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, status, tc.status)
		}
		for k, want := range securityHeaders {
			if got := hdr.Get(k); got != want {
				t.Errorf("%s %s: %s = %q, want %q", tc.method, tc.path, k, got, want)
			}
		}
		if got := hdr.Get("Content-Type"); got != tc.contentType {
			t.Errorf("%s %s: Content-Type = %q, want %q", tc.method, tc.path, got, tc.contentType)
		}
		if got := hdr.Get("Cache-Control"); got != tc.cache {
			t.Errorf("%s %s: Cache-Control = %q, want %q", tc.method, tc.path, got, tc.cache)
		}
	}
	if web.ContentSecurityPolicy != securityHeaders["Content-Security-Policy"] {
		t.Errorf("web.ContentSecurityPolicy = %q", web.ContentSecurityPolicy)
	}

	// The page has no inline script or style: the CSP would block them.
	_, hdr, page := do(t, c, http.MethodGet, base+"/", nil)
	for _, bad := range []string{"<script>", "style=", "<style", "onclick", "javascript:"} {
		if strings.Contains(page, bad) {
			t.Errorf("index.html holds %q, which the CSP blocks", bad)
		}
	}
	if !strings.Contains(page, `<script defer src="app.js"></script>`) {
		t.Errorf("index.html does not load app.js:\n%s", page)
	}
	// Revalidation: the same ETag gets 304 and no body.
	etag := hdr.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag on /")
	}
	status, _, body := do(t, c, http.MethodGet, base+"/", map[string]string{"If-None-Match": etag})
	if status != http.StatusNotModified || body != "" {
		t.Errorf("GET / with its ETag: %d, %d bytes; want 304 and none", status, len(body))
	}

	// API routes win over "/": Login answers as Connect (here: no
	// credentials, so invalid_argument), and an unknown method of a
	// service is Connect's 404, not the wallet.
	status, hdr, body = do(t, c, http.MethodPost, base+"/remit.gateway.v1.AuthService/Login",
		map[string]string{"Content-Type": "application/json"})
	if status == http.StatusOK || hdr.Get("Content-Security-Policy") != "" || !strings.Contains(body, `"code"`) {
		t.Errorf("POST Login: %d %q (CSP %q), want a Connect error", status, body, hdr.Get("Content-Security-Policy"))
	}
	status, _, _ = do(t, c, http.MethodPost, base+"/remit.gateway.v1.PaymentService/NoSuchMethod",
		map[string]string{"Content-Type": "application/json"})
	if status != http.StatusNotFound {
		t.Errorf("POST an unknown method: %d, want 404", status)
	}
}

// TestWebHeaderCORS: without cors_origins no origin gets CORS headers;
// with them, only the listed origins do, and the preflight allows the
// Authorization header gRPC-Web calls carry.
func TestWebHeaderCORS(t *testing.T) {
	const good, evil = "https://wallet.example.com", "https://evil.example.com"
	preflight := func(origin string) map[string]string {
		return map[string]string{
			"Origin": origin, "Access-Control-Request-Method": "POST",
			"Access-Control-Request-Headers": "authorization,content-type,x-grpc-web",
		}
	}
	login := "/remit.gateway.v1.AuthService/Login"

	off := gatewaytest.Start(t, gatewaytest.Options{})
	c := browserClient(t, off)
	for _, origin := range []string{good, evil} {
		_, hdr, _ := do(t, c, http.MethodOptions, off.Gateway.URL+login, preflight(origin))
		if got := hdr.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("CORS off: preflight from %s: Allow-Origin %q, want none", origin, got)
		}
	}

	on := gatewaytest.Start(t, gatewaytest.Options{CORSOrigins: []string{good}})
	c = browserClient(t, on)
	status, hdr, _ := do(t, c, http.MethodOptions, on.Gateway.URL+login, preflight(good))
	if status != http.StatusNoContent || hdr.Get("Access-Control-Allow-Origin") != good ||
		!strings.Contains(strings.ToLower(hdr.Get("Access-Control-Allow-Headers")), "authorization") {
		t.Errorf("preflight from %s: %d %v", good, status, hdr)
	}
	status, hdr, _ = do(t, c, http.MethodOptions, on.Gateway.URL+login, preflight(evil))
	if status != http.StatusForbidden || hdr.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from %s: %d %v, want 403 without CORS headers", evil, status, hdr)
	}
	_, hdr, _ = do(t, c, http.MethodPost, on.Gateway.URL+login, map[string]string{"Origin": good, "Content-Type": "application/json"})
	if hdr.Get("Access-Control-Allow-Origin") != good || hdr.Get("Access-Control-Expose-Headers") == "" {
		t.Errorf("POST from %s: CORS headers %v", good, hdr)
	}
	_, hdr, _ = do(t, c, http.MethodPost, on.Gateway.URL+login, map[string]string{"Origin": evil, "Content-Type": "application/json"})
	if hdr.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("POST from %s: Allow-Origin %q, want none", evil, hdr.Get("Access-Control-Allow-Origin"))
	}
}
