package auth

// CachedSessions returns how many sessions s holds in memory.
func CachedSessions(s *Sessions) int { return s.cache.len() }

// SetLookedUpHook makes Verify call f after its database read and before it
// fills the cache.
func SetLookedUpHook(s *Sessions, f func()) { s.lookedUp = f }
