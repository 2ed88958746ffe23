package audit

// Durable returns how many bytes l appended and fsynced, and in how many
// fsyncs.
func Durable(l *Log) (bytes, syncs int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.durable, l.syncs
}

// Queued returns the number of lines waiting for the next flush.
func Queued(l *Log) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.pending {
		if c == '\n' {
			n++
		}
	}
	return n
}

// SetBeforeWrite makes every flush call f before it writes its batch.
func SetBeforeWrite(l *Log, f func()) { l.beforeWrite = f }
