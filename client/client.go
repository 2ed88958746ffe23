package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"

	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
	"github.com/remitpay/remit/internal/logging"
	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/internal/serve"
)

// DefaultTimeout bounds each attempt of a call when Config.Timeout is zero.
// It matches the gateway's payment decision deadline. A payment still
// running when an attempt times out is not harmed: the retry, with the same
// transaction id, gets REQUEST_IN_PROGRESS (retried again) or the stored
// outcome.
const DefaultTimeout = 10 * time.Second

// Config configures [New]. Only GatewayURL is required; the zero value of
// every other field is a safe default.
type Config struct {
	// GatewayURL is the gateway's base URL, e.g. https://127.0.0.1:8443.
	// Only https is accepted: tokens and payments never travel in clear.
	// It is normalized (see [NormalizeGatewayURL]). A comma-separated list
	// names the replicas of one gateway: the first is GatewayURL, the
	// others are added to MoreGatewayURLs.
	GatewayURL string
	// MoreGatewayURLs are the base URLs of the gateway's other replicas,
	// if it runs several on one database. Calls go to one replica at a
	// time; when it does not answer (unavailable, or an attempt that timed
	// out) the retry goes to the next, with the same transaction id. The
	// client is still known by GatewayURL (profiles, the outbox).
	MoreGatewayURLs []string
	// CAFile is the PEM file of the CA that signed the gateway's
	// certificate (the dev CA's ca.pem). If neither CAFile nor TLSConfig
	// is set, the system roots are used.
	CAFile string
	// TLSConfig, if set, is used instead of CAFile (cloned; TLS 1.3 is
	// enforced).
	TLSConfig *tls.Config
	// Token is a bearer token from an earlier Login, if any.
	Token string
	// Credentials, if set, are used to log in again once when the gateway
	// says the token is missing, expired or revoked.
	Credentials *Credentials
	// OnSession, if set, is called after every successful login, including
	// the automatic re-login, so that callers can persist the new token.
	OnSession func(*Session)
	// Timeout bounds each attempt of a unary call (default DefaultTimeout).
	// Watch streams are bounded by their ctx only.
	Timeout time.Duration
	// Retry is the retry policy; nil means DefaultRetryPolicy().
	Retry *RetryPolicy
	// Logger receives a debug line per retry and re-login (never tokens or
	// passwords); nil discards them.
	Logger *slog.Logger
}

// ErrCAFileNotFound is wrapped by the error of [New] when Config.CAFile
// names no file.
var ErrCAFileNotFound = errors.New("CA certificate file not found")

// NormalizeGatewayURL returns the canonical spelling of a gateway URL: the
// one a [Client] talks to ([Client.GatewayURL]), that profiles store and
// that the outbox scopes queued payments by. The scheme and host are
// lowercased, the default port (443 for https) and trailing slashes are
// dropped, so https://Gateway.example:443/ and https://gateway.example are
// the same gateway. Different hosts stay different, even when they resolve
// to the same address (localhost and 127.0.0.1).
func NormalizeGatewayURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("gateway URL %q is not a URL like https://host:port", raw)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if host == "" {
		return "", fmt.Errorf("gateway URL %q is not a URL like https://host:port", raw)
	}
	if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]" // an IPv6 address
	}
	if port != "" {
		host += ":" + port
	}
	u.Host = host
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = strings.TrimRight(u.RawPath, "/")
	return u.String(), nil
}

// Credentials are a client id and password kept in memory for re-login.
type Credentials struct {
	// ClientID is the login name.
	ClientID string
	// Password is the password; it is sent only to AuthService.Login.
	Password string
}

// Client calls a Remit gateway. It is safe for concurrent use; Close it to
// release its connections.
type Client struct {
	baseURL string
	timeout time.Duration
	retry   RetryPolicy
	creds   atomic.Pointer[Credentials] // replaced by ChangePassword
	onLogin func(*Session)
	log     *slog.Logger

	http     *http.Client
	replicas *replicas
	auth     gatewayv1connect.AuthServiceClient
	pay      gatewayv1connect.PaymentServiceClient
	admin    gatewayv1connect.AdminServiceClient
	health   *grpchealth.Client

	mu      sync.Mutex
	token   string
	session *Session
	loginMu sync.Mutex // serializes re-logins
}

// New returns a Client for cfg. It does not contact the gateway.
func New(cfg Config) (*Client, error) {
	// "https://a:8443,https://b:8443": the replicas of one gateway, as the
	// CLI's --gateway and REMIT_GATEWAY take them.
	if first, rest, ok := strings.Cut(cfg.GatewayURL, ","); ok {
		cfg.GatewayURL = first
		cfg.MoreGatewayURLs = append(strings.Split(rest, ","), cfg.MoreGatewayURLs...)
	}
	baseURL, err := NormalizeGatewayURL(cfg.GatewayURL)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if !strings.HasPrefix(baseURL, "https://") {
		return nil, fmt.Errorf("client: gateway URL %q must use https", cfg.GatewayURL)
	}
	tlsConf := cfg.TLSConfig
	if tlsConf == nil && cfg.CAFile != "" {
		if _, err := os.Stat(cfg.CAFile); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("client: %w: %s", ErrCAFileNotFound, cfg.CAFile)
		}
		if tlsConf, err = pki.ClientConfig(cfg.CAFile, "", ""); err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
	}
	if cfg.Credentials != nil && (cfg.Credentials.ClientID == "" || cfg.Credentials.Password == "") {
		return nil, errors.New("client: credentials need both a client id and a password")
	}
	httpClient := serve.NewHTTP2Client(tlsConf)
	reps, err := newReplicas(httpClient.Transport, baseURL, cfg.MoreGatewayURLs)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	httpClient.Transport = reps
	c := &Client{
		baseURL:  baseURL,
		timeout:  cfg.Timeout,
		onLogin:  cfg.OnSession,
		log:      cfg.Logger,
		http:     httpClient,
		replicas: reps,
		token:    cfg.Token,
	}
	if cfg.Credentials != nil {
		creds := *cfg.Credentials // a copy: ChangePassword replaces it, never the caller's
		c.creds.Store(&creds)
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if cfg.Retry != nil {
		c.retry = cfg.Retry.normalized()
	} else {
		c.retry = DefaultRetryPolicy().normalized()
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	opts := connect.WithInterceptors(validateInterceptor{}, headerInterceptor{c})
	c.auth = gatewayv1connect.NewAuthServiceClient(c.http, c.baseURL, opts)
	c.pay = gatewayv1connect.NewPaymentServiceClient(c.http, c.baseURL, opts)
	c.admin = gatewayv1connect.NewAdminServiceClient(c.http, c.baseURL, opts)
	c.health = grpchealth.NewClient(c.http, c.baseURL)
	return c, nil
}

// Close closes idle connections. Calls already running are not affected.
func (c *Client) Close() error {
	c.http.CloseIdleConnections()
	return nil
}

// GatewayURL returns the gateway's base URL, normalized by
// [NormalizeGatewayURL].
func (c *Client) GatewayURL() string { return c.baseURL }

// MoreGatewayURLs returns the base URLs of the gateway's other replicas,
// normalized, in the order they are tried (see Config.MoreGatewayURLs).
func (c *Client) MoreGatewayURLs() []string {
	var out []string
	for _, u := range c.replicas.urls[1:] {
		out = append(out, u.String())
	}
	return out
}

// Token returns the current bearer token ("" when logged out). It is a
// secret: store it only in files readable by the user alone.
func (c *Client) Token() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

// SetToken replaces the bearer token, e.g. after another process logged
// in again and saved a new profile. An empty token logs the Client out
// locally.
func (c *Client) SetToken(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if token != c.token {
		c.token, c.session = token, nil
	}
}

// Health reports whether the gateway is reachable and serving payments:
// nil, or an [*Error] (unavailable for no answer or NOT_SERVING). It needs
// no token, so the outbox can probe the gateway while logged out.
func (c *Client) Health(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	res, err := c.health.Check(ctx, &grpchealth.CheckRequest{Service: gatewayv1connect.PaymentServiceName})
	if err != nil {
		return newError(err, "", 1)
	}
	if res.Status != grpchealth.StatusServing {
		return &Error{Code: connect.CodeUnavailable, Reason: ReasonNotServing, Retryable: true, Attempts: 1,
			Message: "the gateway is up but not serving payments (" + res.Status.String() + ")"}
	}
	return nil
}

// callState travels in the context of one attempt: the token it was sent
// with (so a failed re-login check compares against it) and its number.
type callState struct {
	token   string
	attempt int
}

type callStateKey struct{}

// headerInterceptor adds the bearer token and the retry attempt header to
// every outgoing request.
type headerInterceptor struct{ c *Client }

func (h headerInterceptor) decorate(ctx context.Context, procedure string, header http.Header) {
	st, ok := ctx.Value(callStateKey{}).(callState)
	if !ok {
		st.token = h.c.Token()
	}
	if st.token != "" && procedure != gatewayv1connect.AuthServiceLoginProcedure {
		header.Set("Authorization", "Bearer "+st.token)
	}
	if st.attempt > 0 {
		header.Set(logging.RetryAttemptHeader, strconv.Itoa(st.attempt))
	}
}

func (h headerInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			h.decorate(ctx, req.Spec().Procedure, req.Header())
		}
		return next(ctx, req)
	}
}

func (h headerInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		h.decorate(ctx, spec.Procedure, conn.RequestHeader())
		return conn
	}
}

func (h headerInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// call runs fn, one attempt at a time, each with its own deadline, until it
// succeeds, fails finally, or the retry policy is used up. txID is attached
// to the returned error. An unauthenticated answer triggers one re-login
// when credentials are configured, then one more try.
func (c *Client) call(ctx context.Context, op, txID string, fn func(context.Context) error) error {
	relogged := false
	retries := 0
	for attempt := 0; ; attempt++ {
		token := c.Token()
		replica := c.replicas.in()
		err := c.attempt(ctx, callState{token: token, attempt: attempt}, fn)
		if err == nil {
			return nil
		}
		e := newError(err, txID, attempt+1)
		if ctx.Err() == nil && c.replicas.failover(replica, e) {
			c.log.DebugContext(ctx, "gateway replica did not answer; trying the next", "op", op,
				"transaction_id", txID, "code", e.Code.String())
		}
		if e.Code == connect.CodeUnauthenticated && c.creds.Load() != nil && !relogged && ctx.Err() == nil {
			relogged = true
			if lerr := c.relogin(ctx, token); lerr != nil {
				c.log.DebugContext(ctx, "re-login failed", "op", op, "error", lerr)
				return e
			}
			continue
		}
		retries++
		if !e.Retryable || retries >= c.retry.MaxAttempts || ctx.Err() != nil {
			return e
		}
		delay := c.retry.Delay(retries)
		if e.RetryAfter > c.retry.MaxDelay {
			return e
		}
		delay = max(delay, e.RetryAfter)
		c.log.DebugContext(ctx, "retrying", "op", op, "transaction_id", txID, "attempt", attempt+1,
			"code", e.Code.String(), "reason", e.Reason, "delay", delay)
		if c.retry.Sleep(ctx, delay) != nil {
			return e
		}
	}
}

// attempt runs fn once under the per-attempt deadline.
func (c *Client) attempt(ctx context.Context, st callState, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, callStateKey{}, st), c.timeout)
	defer cancel()
	return fn(ctx)
}

// relogin logs in with the configured credentials unless another call
// already replaced the token that failed.
func (c *Client) relogin(ctx context.Context, failed string) error {
	c.loginMu.Lock()
	defer c.loginMu.Unlock()
	if c.Token() != failed {
		return nil
	}
	creds := c.creds.Load()
	if creds == nil {
		return errors.New("no credentials to log in again with")
	}
	c.log.DebugContext(ctx, "token rejected; logging in again", "client_id", creds.ClientID)
	_, err := c.Login(ctx, creds.ClientID, creds.Password)
	return err
}
