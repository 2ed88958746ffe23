package client

import (
	"context"
	"time"

	"connectrpc.com/connect"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
)

// Session is the result of a login: the bearer token, when it stops
// working, and who it speaks for.
type Session struct {
	// Token is the opaque bearer token; a secret.
	Token string
	// ExpireTime is when the gateway stops accepting Token.
	ExpireTime time.Time
	// Client is the logged-in principal: client id, own account, roles.
	Client *gatewayv1.Client
}

// Login exchanges a client id and password for a token, which the Client
// uses from then on. It is not retried: a wrong password counts towards the
// gateway's lockout, and a lockout (resource_exhausted, LOGIN_LOCKED) is
// returned with its RetryAfter rather than waited out.
func (c *Client) Login(ctx context.Context, clientID, password string) (*Session, error) {
	if clientID == "" || password == "" {
		return nil, invalid("a client id and a password are required")
	}
	var res *gatewayv1.LoginResponse
	// One attempt per replica: a login is not retried on the replica that
	// answered (a wrong password must count once), only sent to the next
	// when one did not answer.
	for attempt := 1; ; attempt++ {
		replica := c.replicas.in()
		err := c.attempt(ctx, callState{}, func(ctx context.Context) error {
			var err error
			res, err = c.auth.Login(ctx, &gatewayv1.LoginRequest{ClientId: clientID, Password: password})
			return err
		})
		if err == nil {
			break
		}
		e := newError(err, "", attempt)
		if attempt >= len(c.replicas.urls) || ctx.Err() != nil || !c.replicas.failover(replica, e) {
			return nil, e
		}
	}
	s := &Session{Token: res.GetAccessToken(), ExpireTime: res.GetExpireTime().AsTime(), Client: res.GetClient()}
	c.mu.Lock()
	c.token, c.session = s.Token, s
	c.mu.Unlock()
	if c.onLogin != nil {
		c.onLogin(s)
	}
	return s, nil
}

// Session returns the session of the last successful Login on this Client,
// or nil if it was built from a stored token or has logged out.
func (c *Client) Session() *Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

// Logout revokes the current token at the gateway and forgets it. A token
// the gateway no longer accepts counts as logged out, so Logout is
// idempotent; credentials are not used to log in just to log out.
func (c *Client) Logout(ctx context.Context) error {
	token := c.Token()
	defer func() {
		c.mu.Lock()
		if c.token == token {
			c.token, c.session = "", nil
		}
		c.mu.Unlock()
	}()
	if token == "" {
		return nil
	}
	err := c.attempt(ctx, callState{token: token}, func(ctx context.Context) error {
		_, err := c.auth.Logout(ctx, &gatewayv1.LogoutRequest{})
		return err
	})
	if err != nil && connect.CodeOf(err) != connect.CodeUnauthenticated {
		return newError(err, "", 1)
	}
	return nil
}
