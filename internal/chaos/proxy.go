package chaos

import (
	"context"
	"net"
	"sync"
	"time"
)

// Fault is what a [Proxy] does to the traffic through it.
type Fault int

// The faults a Proxy injects. Pass forwards every byte as it comes.
const (
	Pass Fault = iota
	// Latency delays every chunk by the proxy's delay, both ways.
	Latency
	// Reset closes every connection now and every new one as soon as it
	// is accepted: the peer sees connection resets and refusals.
	Reset
	// BlackholeUp drops what the client sends; answers still flow.
	BlackholeUp
	// BlackholeDown drops what the server sends; requests still arrive.
	BlackholeDown
	// Blackhole drops everything both ways and keeps connections open:
	// a network partition, not a refusal.
	Blackhole
	// Bandwidth limits each direction of each connection to the proxy's
	// rate, in bytes per second.
	Bandwidth
)

var faultNames = [...]string{"pass", "latency", "reset", "blackhole-up", "blackhole-down", "blackhole", "bandwidth"}

func (f Fault) String() string { return faultNames[f] }

// Proxy is a TCP proxy on 127.0.0.1 in front of one target address, which
// injects a [Fault] on demand. TLS passes through it untouched: it sees
// only bytes, so what it breaks is the network, never the protocol.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	fault Fault
	delay time.Duration
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewProxy listens on a free loopback port and forwards to target until
// Close.
func NewProxy(ctx context.Context, target string) (*Proxy, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Set changes the fault; delay is used by Latency, and by Bandwidth as
// the time one KiB takes. Every fault takes
// effect on open connections too: Reset closes them, the blackholes drop
// their next bytes.
func (p *Proxy) Set(f Fault, delay time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault, p.delay = f, delay
	if f == Reset {
		for c := range p.conns {
			_ = c.Close() // a reset: the error is the point
		}
		clear(p.conns)
	}
}

// Heal is Set(Pass, 0).
func (p *Proxy) Heal() { p.Set(Pass, 0) }

// Close stops the proxy and closes every connection through it.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) state() (Fault, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fault, p.delay
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fault == Reset {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *Proxy) accept() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		if !p.track(in) {
			_ = in.Close()
			continue
		}
		p.wg.Go(func() { p.serve(in) })
	}
}

func (p *Proxy) serve(in net.Conn) {
	defer p.untrack(in)
	d := net.Dialer{Timeout: 5 * time.Second}
	out, err := d.DialContext(context.Background(), "tcp", p.target)
	if err != nil {
		return // the client sees the connection close: the target is down
	}
	if !p.track(out) {
		_ = out.Close()
		return
	}
	defer p.untrack(out)
	done := make(chan struct{}, 2)
	go func() { p.pipe(out, in, BlackholeUp); done <- struct{}{} }()
	go func() { p.pipe(in, out, BlackholeDown); done <- struct{}{} }()
	<-done
	// One side ended: end both, so the other copy returns too.
	_ = in.Close()
	_ = out.Close()
	<-done
}

// pipe copies src to dst, dropping chunks while the fault is drop or
// Blackhole and delaying them under Latency.
func (p *Proxy) pipe(dst, src net.Conn, drop Fault) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			f, d := p.state()
			switch f {
			case drop, Blackhole:
				continue
			case Latency:
				time.Sleep(d)
			case Bandwidth:
				time.Sleep(d * time.Duration(n) / 1024)
			default: // Pass, Reset (closed already), the other direction's blackhole
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF or a reset: serve closes both sides
		}
	}
}
