package web_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/remitpay/remit/web"
)

// TestHandlerForReplicas: the wallet of a gateway with replicas lists
// their origins in /replicas.json and may connect to them (CSP), and to
// nothing else; without replicas the list is empty and the CSP is the
// same-origin one.
func TestHandlerForReplicas(t *testing.T) {
	get := func(h http.Handler, path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}
	h := web.HandlerFor([]string{"https://127.0.0.1:8451", "https://gw3.example/ignored/path", "http://plain.example"})
	rec := get(h, "/replicas.json")
	var got struct {
		Replicas []string `json:"replicas"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("/replicas.json: %d %q (%v)", rec.Code, rec.Body.String(), err)
	}
	if strings.Join(got.Replicas, " ") != "https://127.0.0.1:8451 https://gw3.example" {
		t.Errorf("replicas = %v, want the https origins only", got.Replicas)
	}
	csp := get(h, "/").Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "connect-src 'self' https://127.0.0.1:8451 https://gw3.example;") || strings.Contains(csp, "plain.example") {
		t.Errorf("CSP %q: want connect-src 'self' and the two https replicas only", csp)
	}
	plain := web.Handler()
	if csp := get(plain, "/").Header().Get("Content-Security-Policy"); csp != web.ContentSecurityPolicy {
		t.Errorf("CSP without replicas %q, want %q", csp, web.ContentSecurityPolicy)
	}
	if body := get(plain, "/replicas.json").Body.String(); body != `{"replicas":[]}` {
		t.Errorf("/replicas.json without replicas = %q", body)
	}
}
