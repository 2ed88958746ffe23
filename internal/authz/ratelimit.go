package authz

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Default per-principal rate limit of the interceptor.
const (
	DefaultRate  rate.Limit = 50  // requests per second, sustained
	DefaultBurst int        = 100 // requests at once
)

// sweepEvery is how often idle limiters are dropped.
const sweepEvery = time.Minute

// limiters holds one token bucket per key (principal or source address).
// A bucket that has been idle long enough to refill completely is
// indistinguishable from a new one, so dropping it loses nothing; that keeps
// memory proportional to the callers of the last few minutes.
type limiters struct {
	limit rate.Limit
	burst int

	mu        sync.Mutex
	m         map[string]*limiterEntry
	lastSweep time.Time
}

type limiterEntry struct {
	lim  *rate.Limiter
	last time.Time
}

func newLimiters(limit rate.Limit, burst int) *limiters {
	return &limiters{limit: limit, burst: burst, m: make(map[string]*limiterEntry)}
}

// allow takes one token for key at now, or returns how long to wait for one.
func (l *limiters) allow(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	if l.limit == rate.Inf {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= sweepEvery {
		l.sweep(now)
	}
	e, found := l.m[key]
	if !found {
		e = &limiterEntry{lim: rate.NewLimiter(l.limit, l.burst)}
		l.m[key] = e
	}
	e.last = now
	r := e.lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

func (l *limiters) sweep(now time.Time) {
	l.lastSweep = now
	idle := sweepEvery
	if l.limit > 0 {
		if refill := time.Duration(float64(l.burst) / float64(l.limit) * float64(time.Second)); refill > idle {
			idle = refill
		}
	}
	for k, e := range l.m {
		if now.Sub(e.last) > idle {
			delete(l.m, k)
		}
	}
}

// SourceOf returns the key under which Remit throttles anonymous traffic
// and failed logins from the network address addr ("host:port" as in
// connect.Peer.Addr or http.Request.RemoteAddr, or a bare IP): the IPv4
// address, or the /64 prefix of an IPv6 address, since one IPv6 host
// usually controls a whole /64. Forwarding headers (X-Forwarded-For) are
// not trusted: Remit is not deployed behind a proxy.
func SourceOf(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.WithZone("").Unmap()
	if ip.Is4() {
		return ip.String()
	}
	return netip.PrefixFrom(ip, 64).Masked().String()
}

// KeyedLimiter is a set of token buckets, one per key, for callers outside
// this package that throttle the same way the interceptor does (the
// servers' anonymous health and reflection endpoints, keyed by [SourceOf]).
// Idle buckets are dropped as they are here. It is safe for concurrent use.
type KeyedLimiter struct{ l *limiters }

// NewKeyedLimiter returns a [KeyedLimiter] allowing limit events per second
// per key, up to burst at once; rate.Inf allows everything.
func NewKeyedLimiter(limit rate.Limit, burst int) *KeyedLimiter {
	return &KeyedLimiter{l: newLimiters(limit, burst)}
}

// Allow takes one token for key at now, or returns how long to wait for one.
func (k *KeyedLimiter) Allow(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	return k.l.allow(key, now)
}
