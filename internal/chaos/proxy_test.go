package chaos

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// echo is a TCP server that writes every line back.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); _ = c.Close() }()
		}
	}()
	return ln.Addr().String()
}

// roundTrip sends a line through conn and waits up to wait for it back.
func roundTrip(conn net.Conn, wait time.Duration) (time.Duration, error) {
	start := time.Now()
	if err := conn.SetDeadline(start.Add(wait)); err != nil {
		return 0, err
	}
	if _, err := conn.Write([]byte("ping\n")); err != nil {
		return 0, err
	}
	_, err := bufio.NewReader(conn).ReadString('\n')
	return time.Since(start), err
}

func TestProxyFaults(t *testing.T) {
	p, err := NewProxy(t.Context(), echo(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	dial := func() net.Conn {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}

	c := dial()
	if _, err := roundTrip(c, 2*time.Second); err != nil {
		t.Fatalf("pass: %v", err)
	}

	p.Set(Latency, 100*time.Millisecond)
	if d, err := roundTrip(c, 2*time.Second); err != nil || d < 200*time.Millisecond {
		t.Errorf("latency 100ms each way: round trip %v, %v; want at least 200ms", d, err)
	}

	for _, f := range []Fault{Blackhole, BlackholeUp, BlackholeDown} {
		p.Set(f, 0)
		if _, err := roundTrip(c, 300*time.Millisecond); err == nil {
			t.Errorf("%v: the line came back", f)
		}
		p.Heal()
		c = dial() // the old one may hold a half-delivered line
		if _, err := roundTrip(c, 2*time.Second); err != nil {
			t.Fatalf("healed after %v: %v", f, err)
		}
	}

	p.Set(Reset, 0)
	if _, err := roundTrip(c, 2*time.Second); err == nil {
		t.Error("reset: an open connection still works")
	}
	if _, err := roundTrip(dial(), 2*time.Second); err == nil {
		t.Error("reset: a new connection works")
	}
	p.Heal()
	if _, err := roundTrip(dial(), 2*time.Second); err != nil {
		t.Errorf("healed after reset: %v", err)
	}
}
