package auth

// CachedSessions returns how many sessions s holds in memory.
func CachedSessions(s *Sessions) int { return s.cache.len() }

// SetLookedUpHook makes Verify call f after its database read and before it
// fills the cache.
func SetLookedUpHook(s *Sessions, f func()) { s.lookedUp = f }

// ThrottleTracked returns how many keys each of a's throttles holds in
// memory: pairs, sources, client ids.
func ThrottleTracked(a *Authenticator) (pairs, sources, ids int) {
	n := func(t *throttle) int {
		t.mu.Lock()
		defer t.mu.Unlock()
		return len(t.m)
	}
	return n(a.pairs), n(a.sources), n(a.accounts)
}

// SessionsOf returns the Sessions of a.
func SessionsOf(a *Authenticator) *Sessions { return a.sessions }

// WatchedSessions returns how many stream watches a holds.
func WatchedSessions(a *Authenticator) int { return a.sessions.watchers.open() }
