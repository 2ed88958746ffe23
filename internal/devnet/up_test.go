package devnet

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeRemit writes an executable script standing in for remit: every child
// Up starts runs it with Up's arguments.
func fakeRemit(t *testing.T, script string) string {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	path := filepath.Join(t.TempDir(), "remit")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// freeBasePort returns a base port whose network ports (the gateway's and
// one per bank) are all free now.
func freeBasePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		if err := ln.Close(); err != nil {
			t.Fatal(err)
		}
		free := p <= MaxBasePort
		for i := 1; free && i < PortsUsed; i++ {
			free = CheckPortFree(t.Context(), net.JoinHostPort("127.0.0.1", strconv.Itoa(p+i))) == nil
		}
		if free {
			return p
		}
	}
	t.Skipf("found no %d free ports in a row", PortsUsed)
	return 0
}

// upOrSkip runs Up, skipping the test if one of the network's ports was
// taken meanwhile by someone else.
func upOrSkip(ctx context.Context, t *testing.T, cfg UpConfig) error {
	t.Helper()
	err := Up(ctx, cfg)
	if err != nil && strings.Contains(err.Error(), "cannot listen on") {
		t.Skipf("a port of the network is taken: %v", err)
	}
	return err
}

// TestUpChildExits runs Up with a remit that exits at once: Up initialises
// the empty directory, starts the gateway with the right arguments, and
// reports its exit instead of waiting out the timeout.
func TestUpChildExits(t *testing.T) {
	self := fakeRemit(t, `echo "fake $*"; exit 3`)
	dir := filepath.Join(t.TempDir(), "net")
	base := freeBasePort(t)
	var stdout, stderr bytes.Buffer
	cfg := UpConfig{Dir: dir, BasePort: base, Timeout: time.Minute, LogFormat: "json", Executable: self, Stdout: &stdout, Stderr: &stderr}
	start := time.Now()
	err := upOrSkip(context.Background(), t, cfg)
	if want := "gateway exited before it was healthy (exit status 3); its log lines above say why"; err == nil || err.Error() != want {
		t.Fatalf("Up = %v, want %q", err, want)
	}
	if elapsed := time.Since(start); elapsed > 30*time.Second {
		t.Errorf("Up took %s to notice the exit", elapsed)
	}
	l := Layout{Dir: dir}
	if !strings.HasPrefix(stdout.String(), "Initialised a local Remit network in "+dir+":\n") || !strings.HasSuffix(stdout.String(), "\n\n") {
		t.Errorf("Up on an empty dir printed no init report and blank line:\n%s", stdout.String())
	}
	if strings.Contains(stdout.String(), ReadyLine) {
		t.Error("Up printed the ready line although the gateway never started")
	}
	for _, want := range []string{
		"gateway | fake --log-format json gateway --config " + l.GatewayConfig() + "\n",
		`up      | {"time":`,
		`"msg":"started","process":"gateway"`,
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	if strings.Contains(stderr.String(), "bank-a |") {
		t.Errorf("Up started a bank although the gateway was not healthy:\n%s", stderr.String())
	}

	// Again on the same directory: no second init, and a note that
	// --base-port is ignored.
	stdout.Reset()
	stderr.Reset()
	cfg.BasePort, cfg.BasePortSet = base+10, true
	if err := upOrSkip(context.Background(), t, cfg); err == nil || !strings.Contains(err.Error(), "gateway exited before it was healthy") {
		t.Errorf("second Up = %v", err)
	}
	if stdout.Len() != 0 {
		t.Errorf("second Up printed %q", stdout.String())
	}
	note := "remit up: note: --base-port " + strconv.Itoa(base+10) + " ignored: " + dir + " was initialised with the gateway on 127.0.0.1:" + strconv.Itoa(base) + "\n"
	if !strings.HasPrefix(stderr.String(), note) {
		t.Errorf("stderr does not start with %q:\n%s", note, stderr.String())
	}
}

// TestUpInterruptedWhileStarting stops Up before the network is ready: a
// normal stop, with every child gone when Up returns.
func TestUpInterruptedWhileStarting(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	self := fakeRemit(t, `echo $$ > `+pidFile+`; exec sleep 30`)
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			if _, err := os.Stat(pidFile); err == nil {
				time.Sleep(200 * time.Millisecond) // a few health checks fail
				cancel()
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	cfg := UpConfig{Dir: filepath.Join(t.TempDir(), "net"), BasePort: freeBasePort(t), Timeout: time.Minute, Executable: self, Stdout: &stdout, Stderr: &stderr}
	if err := upOrSkip(ctx, t, cfg); err != nil {
		t.Fatalf("Up interrupted while starting = %v, want nil", err)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the gateway (pid %d) is still there after Up returned: %v", pid, err)
	}
	if strings.Contains(stdout.String(), ReadyLine) {
		t.Error("Up printed the ready line")
	}
}

func TestUpRefusesForeignDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := Up(context.Background(), UpConfig{Dir: dir, BasePort: DefaultBasePort, Executable: "/nonexistent", Stdout: &out, Stderr: &out})
	if err == nil || !strings.Contains(err.Error(), "holds no Remit network") {
		t.Errorf("Up on a foreign dir = %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("Up wrote into a foreign dir: %v", entries)
	}
}

func TestDirState(t *testing.T) {
	root := t.TempDir()
	for _, tt := range []struct {
		name  string
		files []string
		want  dirState
	}{
		{"missing", nil, dirEmpty},
		{"empty", []string{}, dirEmpty},
		{"initialised", []string{"gateway.yaml", "users.json"}, dirInitialised},
		{"foreign", []string{"notes.txt"}, dirForeign},
		{"half-written", []string{"users.json"}, dirForeign},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := Layout{Dir: filepath.Join(root, tt.name)}
			if tt.files != nil {
				if err := os.MkdirAll(l.Dir, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range tt.files {
				if err := os.WriteFile(filepath.Join(l.Dir, f), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := l.state()
			if err != nil || got != tt.want {
				t.Errorf("state = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}
