package serve_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/rpcerr"
	"github.com/remitpay/remit/internal/serve"
	"github.com/remitpay/remit/internal/serve/servetest"
)

const (
	bombInflated = 100 << 20 // what the bomb decompresses to
	// bombHeapMargin is how much the server may allocate while refusing
	// one bomb: far below what it inflates to.
	bombHeapMargin = 20 << 20
	// maxErrorMessage is the longest error message a refusal may carry.
	maxErrorMessage = 200
)

var bombs = sync.OnceValue(func() map[string]struct {
	gzip   []byte
	margin uint64 // how much the process may allocate refusing it
} {
	return map[string]struct {
		gzip   []byte
		margin uint64
	}{
		// 100 KB to 100 MiB, as in the review: larger than the limit
		// even compressed.
		"100MiB": {servetest.Bomb(bombInflated), bombHeapMargin},
		// 3 KB to 3 MiB: under the limit compressed, so only a bounded
		// decompression refuses it.
		"3MiB": {servetest.Bomb(3 << 20), 2 << 20},
	}
})

func TestDecompressionBombRefused(t *testing.T) {
	s := startServer(t, options{bareMount: true})
	bombs := bombs() // built before measuring
	if n := len(bombs["3MiB"].gzip); n >= serve.MountReadMaxBytes {
		t.Fatalf("the small bomb is %d bytes compressed, want < %d", n, serve.MountReadMaxBytes)
	}
	tests := []struct {
		procedure, protocol string
	}{
		{checkProcedure, connect.ProtocolConnect},
		{checkProcedure, connect.ProtocolGRPC},
		{"/" + grpchealth.HealthV1ServiceName + "/Watch", connect.ProtocolGRPC},
		{"/" + grpcreflect.ReflectV1ServiceName + "/ServerReflectionInfo", connect.ProtocolGRPC},
		{"/" + grpcreflect.ReflectV1AlphaServiceName + "/ServerReflectionInfo", connect.ProtocolGRPC},
	}
	for name, b := range bombs {
		for _, tt := range tests {
			t.Run(name+"/"+tt.protocol+tt.procedure, func(t *testing.T) {
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				start := time.Now()
				a, err := servetest.PostGzip(t.Context(), s.client, s.url, tt.procedure, tt.protocol, b.gzip)
				elapsed := time.Since(start)
				runtime.ReadMemStats(&after)
				if err != nil {
					t.Fatal(err)
				}

				if a.Code != connect.CodeResourceExhausted {
					t.Errorf("code = %v (%.200q), want resource_exhausted", a.Code, a.Message)
				}
				if len(a.Message) > maxErrorMessage || a.BodyBytes > 1024 {
					t.Errorf("answer too long: message %d bytes, body %d bytes: %.200q", len(a.Message), a.BodyBytes, a.Message)
				}
				if strings.Contains(a.Message, "AAAA") {
					t.Errorf("message echoes the request: %.200q", a.Message)
				}
				if grown := after.TotalAlloc - before.TotalAlloc; grown > b.margin {
					t.Errorf("the process allocated %d KiB refusing a bomb, want < %d KiB", grown>>10, b.margin>>10)
				}
				if elapsed > 2*time.Second {
					t.Errorf("refusal took %v", elapsed)
				}
			})
		}
	}
}

// The limit holds whatever options the caller gives Mount.
func TestMountReadLimitOverridesOptions(t *testing.T) {
	p := newPKI(t)
	mux := http.NewServeMux()
	serve.Mount(mux, nil, connect.WithReadMaxBytes(1<<30))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- serve.Serve(ctx, ln, serve.Config{TLS: p.serverTLS, Handler: mux, Logger: slog.New(slog.DiscardHandler)})
	}()
	httpClient := serve.NewHTTP2Client(p.clientTLS)
	t.Cleanup(func() {
		httpClient.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	client := grpchealth.NewClient(httpClient, "https://"+ln.Addr().String(), connect.WithGRPC(), connect.WithSendGzip())
	_, err = client.Check(t.Context(), &grpchealth.CheckRequest{Service: strings.Repeat("x", serve.MountReadMaxBytes)})
	if connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("err = %v, want resource_exhausted", err)
	}
}

func TestUnknownServiceNotEchoed(t *testing.T) {
	s := startServer(t, options{bareMount: true})
	long := "remit." + strings.Repeat("A", 3000) + "\x1b[2J"
	for _, p := range protocols {
		client := grpchealth.NewClient(s.client, s.url, p.opts...)
		_, err := client.Check(t.Context(), &grpchealth.CheckRequest{Service: long})
		checkShortNotFound(t, p.name+" Check", err)

		ctx, cancel := context.WithCancel(t.Context())
		events := client.Watch(ctx, &grpchealth.CheckRequest{Service: long})
		ev := <-events
		cancel()
		checkShortNotFound(t, p.name+" Watch", ev.Err)
		for range events {
		}
	}

	// Reflection's not-found answers name nothing either.
	stream := grpcreflect.NewClient(s.client, s.url, connect.WithGRPC()).NewStream(t.Context())
	defer func() { _, _ = stream.Close() }()
	_, err := stream.FileContainingSymbol(protoreflect.FullName(long))
	if err == nil {
		t.Fatal("FileContainingSymbol of an unknown name succeeded")
	}
	if msg := err.Error(); len(msg) > maxErrorMessage || strings.Contains(msg, "AAAA") {
		t.Errorf("reflection error echoes the request: %.200q", msg)
	}
}

func checkShortNotFound(t *testing.T, what string, err error) {
	t.Helper()
	var cerr *connect.Error
	if !errors.As(err, &cerr) || cerr.Code() != connect.CodeNotFound {
		t.Fatalf("%s: err = %v, want not_found", what, err)
	}
	if rpcerr.Reason(err) != serve.ReasonUnknownService {
		t.Errorf("%s: reason = %q", what, rpcerr.Reason(err))
	}
	msg := cerr.Message()
	if len(msg) > maxErrorMessage || strings.Contains(msg, strings.Repeat("A", 100)) || strings.ContainsRune(msg, '\x1b') {
		t.Errorf("%s: message echoes the request: %.200q (%d bytes)", what, msg, len(msg))
	}
	if !strings.HasPrefix(msg, `unknown service "remit.AAAA`) {
		t.Errorf("%s: message = %q, want the start of the name", what, msg)
	}
}

// slowBody yields one byte per interval, forever (until closed).
type slowBody struct {
	interval time.Duration
	closed   chan struct{}
	once     sync.Once
}

func newSlowBody(interval time.Duration) *slowBody {
	return &slowBody{interval: interval, closed: make(chan struct{})}
}

func (b *slowBody) Read(p []byte) (int, error) {
	select {
	case <-time.After(b.interval):
		p[0] = 0
		return 1, nil
	case <-b.closed:
		return 0, io.EOF
	}
}

func (b *slowBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}

// http1Client speaks HTTP/1.1 only, to the test server.
func http1Client(t *testing.T) *http.Client {
	t.Helper()
	conf := newPKI(t).clientTLS.Clone()
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	tr := &http.Transport{TLSClientConfig: conf, Protocols: protocols}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func TestSlowUnaryBodyIsCutOff(t *testing.T) {
	const timeout = 300 * time.Millisecond
	s := startServer(t, options{configure: func(c *serve.Config) { c.UnaryBodyTimeout = timeout }})
	for name, client := range map[string]*http.Client{"HTTP/2": s.client, "HTTP/1.1": http1Client(t)} {
		t.Run(name, func(t *testing.T) {
			body := newSlowBody(time.Second)
			defer body.Close() //nolint:errcheck // never fails
			// Without the deadline the call would last as long as the body.
			ctx, cancel := context.WithTimeout(t.Context(), timeout+3*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+checkProcedure, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/proto")
			req.Header.Set("Connect-Protocol-Version", "1")
			start := time.Now()
			res, err := client.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
				if res.StatusCode == http.StatusOK {
					t.Fatalf("slow body answered %s", res.Status)
				}
			}
			if ctx.Err() != nil {
				t.Fatalf("the server waited for the slow body until the client gave up: %v", err)
			}
			if d := time.Since(start); d > timeout+2*time.Second {
				t.Fatalf("slow body held the request for %v (deadline %v)", d, timeout)
			}
		})
	}
	if !s.logs.Wait(2*time.Second, func(string) bool { return len(refusals(t, s, serve.LimitUnaryBodyTimeout)) > 0 }) {
		t.Fatalf("no refusal line for the slow body:\n%s", s.logs)
	}
	line := refusals(t, s, serve.LimitUnaryBodyTimeout)[0]
	if line["level"] != "WARN" || line["source"] != "127.0.0.1" || line["timeout"] == nil {
		t.Errorf("refusal line = %v", line)
	}
}

// The body deadline bounds the body only: a handler slower than it still
// answers, over both protocols, and streams stay open past it.
func TestBodyDeadlineSparesResponsesAndStreams(t *testing.T) {
	const timeout = 200 * time.Millisecond
	checker := &slowChecker{started: make(chan struct{}), delay: 3 * timeout}
	s := startServer(t, options{checker: &onceStarted{checker}, configure: func(c *serve.Config) { c.UnaryBodyTimeout = timeout }})
	for name, httpClient := range map[string]*http.Client{"HTTP/2": s.client, "HTTP/1.1": http1Client(t)} {
		res, err := grpchealth.NewClient(httpClient, s.url).Check(t.Context(), &grpchealth.CheckRequest{})
		if err != nil || res.Status != grpchealth.StatusServing {
			t.Fatalf("%s: slow handler: %v, %v", name, res, err)
		}
	}

	s2 := startServer(t, options{configure: func(c *serve.Config) { c.UnaryBodyTimeout = timeout }})
	stream := grpcreflect.NewClient(s2.client, s2.url, connect.WithGRPC()).NewStream(t.Context())
	defer func() { _, _ = stream.Close() }()
	if _, err := stream.ListServices(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * timeout) // the stream's body stays open past the unary deadline
	if _, err := stream.ListServices(); err != nil {
		t.Fatalf("reflection stream cut after the unary body deadline: %v", err)
	}
}

// onceStarted lets a slowChecker serve more than one call.
type onceStarted struct{ c *slowChecker }

func (o *onceStarted) Check(ctx context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	c := &slowChecker{started: make(chan struct{}), delay: o.c.delay}
	return c.Check(ctx, req)
}

// refusals returns the refusal lines of one limit.
func refusals(t *testing.T, s *server, limit string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range s.logs.Records(t) {
		if r["limit"] == limit {
			out = append(out, r)
		}
	}
	return out
}

func TestAnonymousStreamCap(t *testing.T) {
	const limit = 2
	s := startServer(t, options{configure: func(c *serve.Config) { c.Loopback.MaxAnonymousStreams = limit }})
	client := grpchealth.NewClient(s.client, s.url, connect.WithGRPC())
	watch := func() (context.CancelFunc, <-chan grpchealth.WatchEvent, error) {
		ctx, cancel := context.WithCancel(t.Context())
		events := client.Watch(ctx, &grpchealth.CheckRequest{})
		ev := <-events
		if ev.Err != nil {
			cancel()
			for range events {
			}
		}
		return cancel, events, ev.Err
	}
	var cancels []context.CancelFunc
	var streams []<-chan grpchealth.WatchEvent
	for range limit {
		cancel, events, err := watch()
		if err != nil {
			t.Fatal(err)
		}
		cancels = append(cancels, cancel)
		streams = append(streams, events)
	}
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()

	_, _, err := watch()
	if connect.CodeOf(err) != connect.CodeResourceExhausted || rpcerr.Reason(err) != serve.ReasonTooManyStreams {
		t.Fatalf("stream %d: %v (reason %q), want resource_exhausted %s", limit+1, err, rpcerr.Reason(err), serve.ReasonTooManyStreams)
	}
	if !strings.Contains(err.Error(), "2") {
		t.Errorf("message does not name the limit: %v", err)
	}
	// Health never verifies a bearer token, so sending one changes nothing.
	authed := authedClient(s, connect.WithGRPC())
	bctx, bcancel := context.WithCancel(t.Context())
	ev := <-authed.Watch(bctx, &grpchealth.CheckRequest{})
	bcancel()
	if rpcerr.Reason(ev.Err) != serve.ReasonTooManyStreams {
		t.Fatalf("stream with an unverified bearer token: %v, want %s", ev.Err, serve.ReasonTooManyStreams)
	}
	// Unary calls are not streams: they still work.
	if _, err := client.Check(t.Context(), &grpchealth.CheckRequest{}); err != nil {
		t.Fatalf("Check while the streams are full: %v", err)
	}
	lines := refusals(t, s, serve.LimitAnonymousStreams)
	if len(lines) == 0 || len(lines) > 2 || lines[0]["source"] != "127.0.0.1" || lines[0]["max"] != float64(limit) || lines[0]["level"] != "WARN" {
		t.Fatalf("refusal lines = %v", lines)
	}

	// Closing a stream frees its slot.
	cancels[0]()
	for range streams[0] {
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		cancel, _, err := watch()
		if err == nil {
			cancels = append(cancels, cancel)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot after closing a stream: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAnonymousRateLimit(t *testing.T) {
	const burst = 3
	s := startServer(t, options{configure: func(c *serve.Config) {
		c.Loopback.AnonymousRate = 0.001 // no refill during the test
		c.Loopback.AnonymousBurst = burst
	}})
	client := grpchealth.NewClient(s.client, s.url, connect.WithGRPC())
	for i := range burst {
		if _, err := client.Check(t.Context(), &grpchealth.CheckRequest{}); err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
	}
	for range 20 {
		_, err := client.Check(t.Context(), &grpchealth.CheckRequest{})
		if connect.CodeOf(err) != connect.CodeResourceExhausted || rpcerr.Reason(err) != authz.ReasonRateLimited {
			t.Fatalf("over the burst: %v, want resource_exhausted %s", err, authz.ReasonRateLimited)
		}
		if _, ok := authz.RetryAfter(err); !ok {
			t.Fatalf("no retry hint: %v", err)
		}
	}
	// Reflection shares the bucket.
	stream := grpcreflect.NewClient(s.client, s.url, connect.WithGRPC()).NewStream(t.Context())
	if _, err := stream.ListServices(); connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("reflection over the burst: %v", err)
	}
	_, _ = stream.Close()
	// 21 refusals in quick succession make one line (a few on a slow
	// machine: one a second), not 21.
	lines := refusals(t, s, serve.LimitAnonymousRate)
	if len(lines) == 0 || len(lines) > 3 || lines[0]["source"] != "127.0.0.1" || lines[0]["burst"] != float64(burst) || lines[0]["level"] != "WARN" {
		t.Fatalf("refusal lines = %v", lines)
	}
}

func TestConnsPerSource(t *testing.T) {
	const limit = 3
	s := startServer(t, options{configure: func(c *serve.Config) { c.Loopback.MaxConns = limit }})
	conf := newPKI(t).clientTLS.Clone()
	dial := func() (*tls.Conn, error) {
		d := &net.Dialer{Timeout: 2 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", s.addr, conf)
		if err != nil {
			return nil, err
		}
		// A TLS 1.3 client finishes its handshake before the server has
		// read its Finished: a read shows whether the server kept it.
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); !isTimeout(err) {
			_ = c.Close()
			return nil, err
		}
		_ = c.SetReadDeadline(time.Time{})
		return c, nil
	}
	var conns []*tls.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for i := range limit {
		c, err := dial()
		if err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
		conns = append(conns, c)
	}
	if c, err := dial(); err == nil {
		_ = c.Close()
		t.Fatalf("connection %d from one source was accepted", limit+1)
	}
	lines := refusals(t, s, serve.LimitConnsPerSource)
	if len(lines) != 1 || lines[0]["source"] != "127.0.0.1" || lines[0]["max"] != float64(limit) || lines[0]["level"] != "WARN" {
		t.Fatalf("refusal lines = %v", lines)
	}

	// A closed connection frees its slot.
	_ = conns[0].Close()
	conns = conns[1:]
	deadline := time.Now().Add(3 * time.Second)
	for {
		c, err := dial()
		if err == nil {
			conns = append(conns, c)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot after closing a connection: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestIsStreaming(t *testing.T) {
	for path, want := range map[string]bool{
		checkProcedure: false,
		"/" + grpchealth.HealthV1ServiceName + "/Watch":                       true,
		"/" + grpcreflect.ReflectV1ServiceName + "/ServerReflectionInfo":      true,
		"/" + grpcreflect.ReflectV1AlphaServiceName + "/ServerReflectionInfo": true,
		"/nothing.Here/At": false,
		"/":                false,
		"":                 false,
		"/no-method":       false,
	} {
		if got := serve.IsStreaming(path); got != want {
			t.Errorf("IsStreaming(%q) = %v, want %v", path, got, want)
		}
	}
}
