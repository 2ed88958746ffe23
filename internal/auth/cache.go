package auth

import (
	"crypto/sha256"
	"sync"
)

// DefaultCacheSize is the number of verified sessions [Sessions] keeps in
// memory unless [SessionConfig.CacheSize] says otherwise.
const DefaultCacheSize = 10_000

// sessionCache holds sessions that the database said were valid, keyed by
// the token's SHA-256, so that an authenticated call need not read SQLite.
//
// Only successful lookups are stored, each with the session's own expiry,
// which a hit checks again: the cache never extends a session, and a token
// that was unknown, expired or revoked is looked up in the database every
// time. Every revocation goes through the owning [Sessions], which deletes
// the entries it revokes and bumps gen under mu after its database write; a
// lookup that read the database before that write only stores its result
// if gen did not move meanwhile (see put), so a revoked session cannot come
// back into the cache.
type sessionCache struct {
	max int // <= 0: disabled

	mu     sync.RWMutex
	gen    uint64
	byHash map[[sha256.Size]byte]cachedSession
	byID   map[string][sha256.Size]byte
}

type cachedSession struct {
	clientID, sessionID string
	expiresAt           int64 // Unix ms, as in the database
}

func newSessionCache(size int) *sessionCache {
	c := &sessionCache{max: size}
	if size > 0 {
		c.byHash = make(map[[sha256.Size]byte]cachedSession)
		c.byID = make(map[string][sha256.Size]byte)
	}
	return c
}

// get returns the cached session for hash and the generation to pass to
// put if there is none.
func (c *sessionCache) get(hash [sha256.Size]byte) (cachedSession, bool, uint64) {
	if c.max <= 0 {
		return cachedSession{}, false, 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.byHash[hash]
	return e, ok, c.gen
}

// put stores a session the database found valid, unless a revocation
// happened since get returned gen.
func (c *sessionCache) put(gen uint64, hash [sha256.Size]byte, e cachedSession, now int64) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if len(c.byHash) >= c.max {
		c.evict(now)
	}
	c.byHash[hash] = e
	c.byID[e.sessionID] = hash
}

// evict makes room: it drops expired sessions and, if that frees less than
// a sixteenth of the cache, arbitrary others (map order), so that a full
// cache costs one sweep per max/16 insertions.
func (c *sessionCache) evict(now int64) {
	for h, e := range c.byHash {
		if now >= e.expiresAt {
			c.remove(h, e.sessionID)
		}
	}
	target := c.max - max(c.max/16, 1)
	for h, e := range c.byHash {
		if len(c.byHash) <= target {
			break
		}
		c.remove(h, e.sessionID)
	}
}

func (c *sessionCache) remove(hash [sha256.Size]byte, sessionID string) {
	delete(c.byHash, hash)
	delete(c.byID, sessionID)
}

// drop removes an expired entry found by get.
func (c *sessionCache) drop(hash [sha256.Size]byte) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byHash[hash]; ok {
		c.remove(hash, e.sessionID)
	}
}

// revokeToken, revokeSession and revokeClient forget the sessions a
// revocation ended and bump the generation. They run after the database
// write, whether it failed or not.
func (c *sessionCache) revokeToken(hash [sha256.Size]byte) {
	c.revoke(func() {
		if e, ok := c.byHash[hash]; ok {
			c.remove(hash, e.sessionID)
		}
	})
}

func (c *sessionCache) revokeSession(sessionID string) {
	c.revoke(func() {
		if h, ok := c.byID[sessionID]; ok {
			c.remove(h, sessionID)
		}
	})
}

// revokeClient forgets every session of clientID but keep ("" for none).
func (c *sessionCache) revokeClient(clientID, keep string) {
	c.revoke(func() {
		for h, e := range c.byHash {
			if e.clientID == clientID && (keep == "" || e.sessionID != keep) {
				c.remove(h, e.sessionID)
			}
		}
	})
}

// clear forgets every session: what another process revoked while this
// one could not hear of it may be among them (see Sessions.UseBus).
func (c *sessionCache) clear() {
	c.revoke(func() {
		clear(c.byHash)
		clear(c.byID)
	})
}

func (c *sessionCache) revoke(del func()) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	del()
}

// len returns the number of cached sessions (for tests).
func (c *sessionCache) len() int {
	if c.max <= 0 {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.byHash)
}
