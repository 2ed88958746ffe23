package auth

import "sync"

// sessionWatchers tells open streams at once that their session ended, so
// that a revocation (Logout, RevokeSessions, a disabled user, a changed
// password) ends a WatchPayments stream now rather than at the
// interceptor's next periodic re-verification. The interceptor registers
// every stream it opens ([Authenticator.SessionEnded]); every revocation
// path of [Sessions] closes the channels of the sessions it ended, after
// its database write and the cache update, so that a stream woken by it
// finds the session invalid.
type sessionWatchers struct {
	mu       sync.Mutex
	byClient map[string]map[*sessionWatch]struct{}
}

type sessionWatch struct {
	clientID, sessionID string
	ch                  chan struct{}
	once                sync.Once
}

func (w *sessionWatch) fire() { w.once.Do(func() { close(w.ch) }) }

func newSessionWatchers() *sessionWatchers {
	return &sessionWatchers{byClient: map[string]map[*sessionWatch]struct{}{}}
}

// watch registers a watch of session sessionID of clientID.
func (s *sessionWatchers) watch(clientID, sessionID string) (<-chan struct{}, func()) {
	w := &sessionWatch{clientID: clientID, sessionID: sessionID, ch: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.byClient[clientID]
	if m == nil {
		m = map[*sessionWatch]struct{}{}
		s.byClient[clientID] = m
	}
	m[w] = struct{}{}
	return w.ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if m := s.byClient[clientID]; m != nil {
			delete(m, w)
			if len(m) == 0 {
				delete(s.byClient, clientID)
			}
		}
	}
}

// endSession fires the watches of one session (any client).
func (s *sessionWatchers) endSession(sessionID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.byClient {
		for w := range m {
			if w.sessionID == sessionID {
				w.fire()
			}
		}
	}
}

// endSessionOf fires the watches of session sessionID of clientID only.
func (s *sessionWatchers) endSessionOf(clientID, sessionID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for w := range s.byClient[clientID] {
		if w.sessionID == sessionID {
			w.fire()
		}
	}
}

// endClient fires the watches of every session of clientID but keep ("" for
// none).
func (s *sessionWatchers) endClient(clientID, keep string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for w := range s.byClient[clientID] {
		if keep == "" || w.sessionID != keep {
			w.fire()
		}
	}
}

// open returns the number of registered watches (for tests).
func (s *sessionWatchers) open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.byClient {
		n += len(m)
	}
	return n
}
