package devnet

import (
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"time"
)

// supervisor runs the children of `remit up`: each is this same binary
// running one role, with its output prefixed by its name.
type supervisor struct {
	self       string   // this executable
	globalArgs []string // flags passed to every child before the command
	logs       *logMux  // where child output goes
	procs      []*proc
	exited     chan *proc // each child once, when it exits
}

// proc is one child process.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the child exited and its output is flushed
	err  error         // cmd.Wait's result, set before done is closed
}

func newSupervisor(self string, globalArgs []string, logs *logMux) *supervisor {
	return &supervisor{self: self, globalArgs: globalArgs, logs: logs, exited: make(chan *proc, 16)}
}

// start runs `remit <globalArgs> <args>` as the child called name.
func (s *supervisor) start(name string, args ...string) (*proc, error) {
	cmd := exec.Command(s.self, append(slices.Clone(s.globalArgs), args...)...) //nolint:gosec,noctx // G204: s.self is this binary and the args are ours; noctx: children are stopped by signal (stop), never killed by a context
	out := s.logs.writer(name)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = childSysProcAttr()
	// Bound the wait for the output pipes after the child exited, in case
	// something it started still holds them.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	s.procs = append(s.procs, p)
	go func() {
		p.err = cmd.Wait()
		out.flush()
		close(p.done)
		s.exited <- p
	}()
	return p, nil
}

// exitedNow reports whether p has exited.
func (p *proc) exitedNow() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// describeExit says how p ended, for people.
func (p *proc) describeExit() string {
	if p.err == nil {
		return "exited with status 0"
	}
	return p.err.Error()
}

// stop asks every running child to shut down gracefully (SIGTERM), waits up
// to grace, then kills the rest, and returns once all have exited.
func (s *supervisor) stop(grace time.Duration) {
	for _, p := range s.procs {
		if !p.exitedNow() {
			// A child that exited meanwhile (os.ErrProcessDone) is what we
			// want; done below reports every exit either way.
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	timeout := time.NewTimer(grace)
	defer timeout.Stop()
	for _, p := range s.procs {
		select {
		case <-p.done:
		case <-timeout.C:
			for _, q := range s.procs {
				if !q.exitedNow() {
					fmt.Fprintf(s.logs.writer("up"), "%s did not stop within %s; killing it\n", q.name, grace)
					_ = q.cmd.Process.Kill() // as for Signal above
				}
			}
			<-p.done
		}
	}
	for _, p := range s.procs {
		<-p.done
	}
}

// logMux interleaves the output of several processes line by line, each
// line prefixed with its process's name in a fixed-width column.
type logMux struct {
	mu    sync.Mutex
	w     io.Writer
	width int
}

func newLogMux(w io.Writer, names []string) *logMux {
	m := &logMux{w: w}
	for _, n := range names {
		m.width = max(m.width, len(n))
	}
	return m
}

// writer returns an io.Writer whose complete lines reach the mux prefixed
// with name.
func (m *logMux) writer(name string) *lineWriter {
	return &lineWriter{mux: m, prefix: fmt.Sprintf("%-*s | ", m.width, name)}
}

// lineWriter buffers a partial line until its newline arrives, so that lines
// of different processes never mix.
type lineWriter struct {
	mux    *logMux
	prefix string
	mu     sync.Mutex
	buf    []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	var out []byte
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		out = append(out, l.prefix...)
		out = append(out, l.buf[:i+1]...)
		l.buf = l.buf[i+1:]
	}
	// A line without a newline is held back, but not without bound.
	if len(l.buf) > 64<<10 {
		out = append(out, l.prefix...)
		out = append(out, l.buf...)
		out = append(out, '\n')
		l.buf = l.buf[:0]
	}
	if len(out) > 0 {
		l.mux.mu.Lock()
		defer l.mux.mu.Unlock()
		// A failed write (up's stderr closed) loses the line but must not
		// fail the child's next write and kill it with SIGPIPE.
		_, _ = l.mux.w.Write(out)
	}
	return len(p), nil
}

// flush writes a last line that had no newline.
func (l *lineWriter) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) == 0 {
		return
	}
	out := append([]byte(l.prefix), l.buf...)
	out = append(out, '\n')
	l.buf = nil
	l.mux.mu.Lock()
	defer l.mux.mu.Unlock()
	_, _ = l.mux.w.Write(out) // as in Write
}
