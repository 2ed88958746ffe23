package serve

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"time"
)

// Client-side HTTP/2 health checking used by [NewHTTP2Client].
const (
	// ClientReadIdleTimeout is how long a client connection may receive
	// nothing before the client sends a PING, so dead bank connections are
	// detected instead of hanging RPCs.
	ClientReadIdleTimeout = 30 * time.Second
	// ClientPingTimeout is how long the client waits for a PING ack before
	// closing the connection.
	ClientPingTimeout = 15 * time.Second
)

// ClientIdleConnTimeout is how long an unused pooled connection stays open.
const ClientIdleConnTimeout = 90 * time.Second

// NewHTTP2Client returns the HTTP client Remit uses to call Connect servers
// (the banks, and each other in tests): HTTP/2 only, over TLS only — the
// transport refuses http:// URLs — with TLS 1.3 as the minimum version and
// PING-based detection of dead connections. gRPC requires HTTP/2, and one
// multiplexed connection per bank keeps latency low.
//
// tlsConf (cloned, never modified) carries the roots and, for mTLS, the
// client certificate; nil means system roots. A MinVersion below TLS 1.3 is
// raised to TLS 1.3. The client has no overall timeout because it also
// carries streams: bound each RPC with a context deadline.
func NewHTTP2Client(tlsConf *tls.Config) *http.Client {
	var conf *tls.Config
	if tlsConf != nil {
		conf = tlsConf.Clone()
	} else {
		conf = &tls.Config{}
	}
	if conf.MinVersion < tls.VersionTLS13 {
		conf.MinVersion = tls.VersionTLS13
	}
	// HTTP/2 over TLS only: no HTTP/1.1 and no h2c.
	protocols := new(http.Protocols)
	protocols.SetHTTP2(true)
	return &http.Client{
		Transport: httpsOnly{&http.Transport{
			TLSClientConfig: conf,
			Protocols:       protocols,
			HTTP2: &http.HTTP2Config{
				SendPingTimeout: ClientReadIdleTimeout,
				PingTimeout:     ClientPingTimeout,
			},
			// Close pooled connections nobody used for a while, so a server
			// shutting down gracefully (GOAWAY) is not kept waiting by a
			// connection this client will never use again.
			IdleConnTimeout: ClientIdleConnTimeout,
		}},
	}
}

// httpsOnly refuses every request that is not https://. An http.Transport
// whose Protocols allow only HTTP/2 still sends http:// requests as
// plaintext HTTP/1.1; Remit never sends plaintext (redirects included).
// The embedded transport provides CloseIdleConnections.
type httpsOnly struct{ *http.Transport }

func (t httpsOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" {
		if req.Body != nil {
			_ = req.Body.Close() // a RoundTripper always closes the body
		}
		return nil, fmt.Errorf("serve: refusing %s request to %s: TLS only", req.URL.Scheme, req.URL.Host)
	}
	return t.Transport.RoundTrip(req)
}
