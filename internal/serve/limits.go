package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/remitpay/remit/internal/authz"
)

// Per-source limits applied by [Serve] to zero-valued [SourceLimits] fields.
const (
	// DefaultUnaryBodyTimeout is how long a unary RPC's request body may
	// take to arrive, counted from the moment its headers were read. Remit
	// request messages are small; a client trickling one byte a second is
	// holding the connection, not paying.
	DefaultUnaryBodyTimeout = 10 * time.Second
	// DefaultMaxConnsPerSource caps concurrent TCP connections from one
	// remote source ([authz.SourceOf]: an IPv4 address or an IPv6 /64).
	// Remit clients multiplex every RPC over one HTTP/2 connection.
	DefaultMaxConnsPerSource = 64
	// DefaultMaxConnsPerLoopback is the same cap for loopback sources. On
	// a development network every process (gateway, banks, CLI, and
	// `remit bench` with one connection per customer, up to 9,999) shares
	// 127.0.0.1, so the loopback cap only guards against descriptor
	// exhaustion.
	DefaultMaxConnsPerLoopback = 16384
	// DefaultMaxAnonymousStreams caps concurrent anonymous streams
	// (health Watch, reflection, or any stream without credentials) from
	// one source, loopback included.
	DefaultMaxAnonymousStreams = 8
	// DefaultAnonymousRate and DefaultAnonymousBurst are the per-source
	// token bucket of anonymous requests to the health and reflection
	// services, which have no interceptor to throttle them. Probes call a
	// few times a second at most. Loopback sources are not throttled by
	// default (`remit bench` measures its ceiling with health checks).
	DefaultAnonymousRate  rate.Limit = 10
	DefaultAnonymousBurst int        = 50
)

// ReasonTooManyStreams is the ErrorInfo reason of a stream refused because
// its source already holds the most anonymous streams allowed.
const ReasonTooManyStreams = "TOO_MANY_STREAMS"

// Values of the "limit" key of the Warn line logged for a refusal (one per
// kind per second at most; "suppressed" counts the refusals in between).
const (
	LimitConnsPerSource   = "max_conns_per_source"
	LimitAnonymousStreams = "max_anonymous_streams_per_source"
	LimitAnonymousRate    = "anonymous_rate_per_source"
	LimitUnaryBodyTimeout = "unary_body_timeout"
)

// refusalLogEvery is the most often one kind of refusal is logged; the
// refusals in between are counted in the next line's "suppressed".
const refusalLogEvery = time.Second

// SourceLimits are the limits [Serve] applies per source address
// ([authz.SourceOf]). Zero fields take the defaults of their class (see
// [Config]); a negative count or rate means unlimited.
type SourceLimits struct {
	// MaxConns caps concurrent TCP connections. The connection over the
	// cap is closed as soon as it is accepted, before the TLS handshake.
	MaxConns int
	// MaxAnonymousStreams caps concurrent anonymous streaming RPCs; the
	// stream over the cap fails with resource_exhausted, reason
	// [ReasonTooManyStreams].
	MaxAnonymousStreams int
	// AnonymousRate and AnonymousBurst throttle anonymous requests to the
	// health and reflection services (resource_exhausted, reason
	// authz.ReasonRateLimited). Other anonymous RPCs (Login) are throttled
	// per source by the authz interceptor.
	AnonymousRate  rate.Limit
	AnonymousBurst int
}

func (l SourceLimits) withDefaults(d SourceLimits) SourceLimits {
	if l.MaxConns == 0 {
		l.MaxConns = d.MaxConns
	}
	if l.MaxAnonymousStreams == 0 {
		l.MaxAnonymousStreams = d.MaxAnonymousStreams
	}
	if l.AnonymousRate == 0 {
		l.AnonymousRate = d.AnonymousRate
	}
	if l.AnonymousRate < 0 {
		l.AnonymousRate = rate.Inf
	}
	if l.AnonymousBurst <= 0 {
		l.AnonymousBurst = d.AnonymousBurst
	}
	return l
}

var (
	defaultSourceLimits = SourceLimits{
		MaxConns:            DefaultMaxConnsPerSource,
		MaxAnonymousStreams: DefaultMaxAnonymousStreams,
		AnonymousRate:       DefaultAnonymousRate,
		AnonymousBurst:      DefaultAnonymousBurst,
	}
	defaultLoopbackLimits = SourceLimits{
		MaxConns:            DefaultMaxConnsPerLoopback,
		MaxAnonymousStreams: DefaultMaxAnonymousStreams,
		AnonymousRate:       rate.Inf,
		AnonymousBurst:      DefaultAnonymousBurst,
	}
)

// class is the limits of one kind of source and the state they count.
type class struct {
	SourceLimits

	rate *authz.KeyedLimiter
}

// limits holds one server's per-source state: connection and stream
// counts, anonymous token buckets, and the refusal log.
type limits struct {
	remote, loopback class
	bodyTimeout      time.Duration
	log              *refusalLog
	errors           *connect.ErrorWriter

	mu      sync.Mutex
	conns   map[string]int
	streams map[string]int
}

func newLimits(cfg Config) *limits {
	l := &limits{
		remote:      class{SourceLimits: cfg.Sources},
		loopback:    class{SourceLimits: cfg.Loopback},
		bodyTimeout: cfg.UnaryBodyTimeout,
		log:         &refusalLog{logger: cfg.Logger, last: make(map[string]time.Time), suppressed: make(map[string]int)},
		errors:      connect.NewErrorWriter(),
		conns:       make(map[string]int),
		streams:     make(map[string]int),
	}
	l.remote.rate = authz.NewKeyedLimiter(l.remote.AnonymousRate, l.remote.AnonymousBurst)
	l.loopback.rate = authz.NewKeyedLimiter(l.loopback.AnonymousRate, l.loopback.AnonymousBurst)
	return l
}

// classOf returns the source key of a remote address ("host:port") and its
// limits.
func (l *limits) classOf(addr string) (string, *class) {
	key := authz.SourceOf(addr)
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap().IsLoopback() {
		return key, &l.loopback
	}
	return key, &l.remote
}

// acquire takes one of max slots for key in counts; max < 0 is unlimited.
func (l *limits) acquire(counts map[string]int, key string, limit int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if limit >= 0 && counts[key] >= limit {
		return false
	}
	counts[key]++
	return true
}

func (l *limits) release(counts map[string]int, key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if counts[key] <= 1 {
		delete(counts, key)
		return
	}
	counts[key]--
}

// listener caps concurrent connections per source: a connection over its
// source's cap is closed at once and never reaches the HTTP server.
type listener struct {
	net.Listener

	limits *limits
}

func (ln *listener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := c.RemoteAddr().String()
		key, cl := ln.limits.classOf(addr)
		if ln.limits.acquire(ln.limits.conns, key, cl.MaxConns) {
			return &conn{Conn: c, release: sync.OnceFunc(func() { ln.limits.release(ln.limits.conns, key) })}, nil
		}
		ln.limits.log.refused(context.Background(), "connection refused: too many connections from one source", LimitConnsPerSource, key, slog.Int("max", cl.MaxConns))
		_ = c.Close() // refused; the client sees the connection closed
	}
}

// conn gives back its source's connection slot when closed.
type conn struct {
	net.Conn

	release func()
}

func (c *conn) Close() error {
	c.release()
	return c.Conn.Close()
}

// Services that never authenticate their callers: every call to them is
// anonymous unless the client presented a verified certificate.
var anonymousServices = map[string]bool{
	grpchealth.HealthV1ServiceName:        true,
	grpcreflect.ReflectV1ServiceName:      true,
	grpcreflect.ReflectV1AlphaServiceName: true,
}

// mountedStreams are the streaming procedures of [Mount]'s services, whose
// descriptors grpchealth and grpcreflect do not register globally.
var mountedStreams = map[string]bool{
	"/" + grpchealth.HealthV1ServiceName + "/Watch":                       true,
	"/" + grpcreflect.ReflectV1ServiceName + "/ServerReflectionInfo":      true,
	"/" + grpcreflect.ReflectV1AlphaServiceName + "/ServerReflectionInfo": true,
}

// IsStreaming reports whether the Connect route path ("/pkg.Service/Method")
// names a streaming procedure: one of [Mount]'s, or one whose descriptor is
// linked into the binary (generated code registers every Remit service).
// [Serve] applies the unary body deadline to every other route; an unknown
// route is answered 404 without waiting for its body anyway.
func IsStreaming(path string) bool {
	_, streaming := procedure(path)
	return streaming
}

// procedure returns the service of route path and whether it streams.
func procedure(path string) (service string, streaming bool) {
	service, method, ok := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if !ok {
		return "", false
	}
	if mountedStreams[path] {
		return service, true
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		return service, false
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return service, false
	}
	md := sd.Methods().ByName(protoreflect.Name(method))
	return service, md != nil && (md.IsStreamingClient() || md.IsStreamingServer())
}

// anonymous reports whether r comes from nobody in particular: no verified
// client certificate, and either no Authorization header or a service that
// never checks one (a header nobody verifies must not lift the limits).
func anonymous(r *http.Request, service string) bool {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return false
	}
	return anonymousServices[service] || len(r.Header.Values("Authorization")) == 0
}

// handler applies the per-request limits before next sees the request: the
// unary body deadline, the anonymous rate limit on health and reflection,
// and the cap on anonymous streams.
func (l *limits) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		service, streaming := procedure(r.URL.Path)
		if !streaming && l.bodyTimeout > 0 && r.Body != nil && r.Body != http.NoBody {
			// Streams keep their bodies open by design; a unary body must
			// arrive in time. The deadline bounds the body only: once it is
			// read, net/http clears it (HTTP/1 starts its background read
			// without one; an HTTP/2 stream's ends with the stream).
			rc := http.NewResponseController(w)
			if err := rc.SetReadDeadline(time.Now().Add(l.bodyTimeout)); err == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, limits: l, source: r.RemoteAddr}
			}
		}
		if !anonymous(r, service) {
			next.ServeHTTP(w, r)
			return
		}
		key, cl := l.classOf(r.RemoteAddr)
		if anonymousServices[service] {
			if ok, retry := cl.rate.Allow(key, time.Now()); !ok {
				l.log.refused(r.Context(), "request refused: anonymous rate limit", LimitAnonymousRate, key,
					slog.Float64("rate", float64(cl.AnonymousRate)), slog.Int("burst", cl.AnonymousBurst))
				l.refuse(w, r, authz.RateLimited(retry))
				return
			}
		}
		if streaming {
			if !l.acquire(l.streams, key, cl.MaxAnonymousStreams) {
				l.log.refused(r.Context(), "stream refused: too many anonymous streams from one source", LimitAnonymousStreams, key,
					slog.Int("max", cl.MaxAnonymousStreams))
				l.refuse(w, r, authz.ResourceExhausted(ReasonTooManyStreams,
					fmt.Sprintf("too many anonymous streams from this address (at most %d)", cl.MaxAnonymousStreams), time.Second))
				return
			}
			defer l.release(l.streams, key)
		}
		next.ServeHTTP(w, r)
	})
}

// refuse answers r with err in its protocol, without reading the body.
func (l *limits) refuse(w http.ResponseWriter, r *http.Request, err *connect.Error) {
	if !l.errors.IsSupported(r) {
		http.Error(w, err.Message(), http.StatusTooManyRequests)
		return
	}
	_ = l.errors.Write(w, r, err) // the client has gone; nothing to add
}

// deadlineBody logs the bodies that missed their deadline.
type deadlineBody struct {
	io.ReadCloser

	limits *limits
	source string
	logged bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !b.logged && errors.Is(err, os.ErrDeadlineExceeded) {
		b.logged = true
		key, _ := b.limits.classOf(b.source)
		b.limits.log.refused(context.Background(), "request refused: unary body too slow", LimitUnaryBodyTimeout, key,
			slog.Duration("timeout", b.limits.bodyTimeout))
	}
	return n, err
}

// refusalLog writes one Warn line per refusal, but at most one per kind
// (limit) every refusalLogEvery, so that a flood of refusals cannot flood
// the log; each line counts the refusals it stands for.
type refusalLog struct {
	logger *slog.Logger

	mu         sync.Mutex
	last       map[string]time.Time
	suppressed map[string]int
}

func (r *refusalLog) refused(ctx context.Context, msg, limit, source string, attrs ...slog.Attr) {
	now := time.Now()
	r.mu.Lock()
	if now.Sub(r.last[limit]) < refusalLogEvery {
		r.suppressed[limit]++
		r.mu.Unlock()
		return
	}
	r.last[limit] = now
	suppressed := r.suppressed[limit]
	delete(r.suppressed, limit)
	r.mu.Unlock()
	all := make([]slog.Attr, 0, len(attrs)+3)
	all = append(all, slog.String("limit", limit), slog.String("source", source))
	all = append(all, attrs...)
	all = append(all, slog.Int("suppressed", suppressed))
	r.logger.LogAttrs(ctx, slog.LevelWarn, msg, all...)
}
