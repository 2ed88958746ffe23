package client

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"

	"connectrpc.com/connect"
)

// replicas sends each request to the gateway replica in use: the Client's
// services are built on its first URL, and this transport rewrites every
// request's scheme and host to the current replica's. [Client.call] moves
// to the next replica when one does not answer (unavailable, or an attempt
// that timed out), so a retry, with the same transaction id, goes to
// another replica; they share one database, so each answers any request
// as the others would.
type replicas struct {
	next    http.RoundTripper
	urls    []*url.URL
	current atomic.Int32
}

func newReplicas(next http.RoundTripper, base string, more []string) (*replicas, error) {
	r := &replicas{next: next}
	for _, raw := range append([]string{base}, more...) {
		norm, err := NormalizeGatewayURL(raw)
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(norm, "https://") {
			return nil, fmt.Errorf("gateway URL %q must use https", raw)
		}
		u, err := url.Parse(norm)
		if err != nil {
			return nil, err
		}
		if len(r.urls) > 0 && u.Path != r.urls[0].Path {
			return nil, fmt.Errorf("gateway replica %q has another path than %q", raw, r.urls[0])
		}
		r.urls = append(r.urls, u)
	}
	return r, nil
}

// RoundTrip sends req to the current replica.
func (r *replicas) RoundTrip(req *http.Request) (*http.Response, error) {
	at := r.urls[r.current.Load()]
	if len(r.urls) == 1 || (req.URL.Host == at.Host && req.URL.Scheme == at.Scheme) {
		return r.next.RoundTrip(req)
	}
	out := req.Clone(req.Context())
	out.URL.Scheme, out.URL.Host, out.Host = at.Scheme, at.Host, ""
	return r.next.RoundTrip(out)
}

// in is the replica in use, to pass to failover.
func (r *replicas) in() int32 { return r.current.Load() }

// failover moves to the next replica after one that was in use (from)
// failed with err, if err says it did not answer; it reports whether it
// moved (another call may have moved already: then the next attempt goes
// where that one went).
func (r *replicas) failover(from int32, err *Error) bool {
	if len(r.urls) < 2 || !unanswered(err) {
		return false
	}
	return r.current.CompareAndSwap(from, (from+1)%int32(len(r.urls))) //nolint:gosec // a handful of replicas
}

// unanswered reports an error that says the replica did not answer: no
// connection, a broken one, a server that is not serving, or an attempt
// that ran out of time (a hung replica; call checks first that the
// deadline was the attempt's, not its caller's).
func unanswered(e *Error) bool {
	return e != nil && (e.Code == connect.CodeUnavailable || e.Code == connect.CodeDeadlineExceeded)
}

// CloseIdleConnections closes the idle connections of every replica.
func (r *replicas) CloseIdleConnections() {
	if c, ok := r.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
