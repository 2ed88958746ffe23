package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/remitpay/remit/internal/logging/logtest"
	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/internal/portlock"
)

// readyLine is the last line of the banner `remit up` prints when the whole
// network answers (cmd/remit/up.go).
const readyLine = "Ready. Press Ctrl-C to stop."

// Bounds on waiting. Starting includes `remit init` (six argon2id hashes)
// on a slow 2-core CI machine.
const (
	startTimeout = 2 * time.Minute
	stopTimeout  = 30 * time.Second
	pollEvery    = 50 * time.Millisecond
)

// remitBin is the binary TestMain builds.
var remitBin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Fprintln(os.Stdout, "e2e: skipped with -short: these tests build remit and run a whole network")
		os.Exit(m.Run()) // each test skips itself too
	}
	dir, err := os.MkdirTemp("", "remit-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	remitBin = filepath.Join(dir, "remit")
	args := []string{"build", "-o", remitBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "github.com/remitpay/remit/cmd/remit")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: go build ./cmd/remit:", err)
		removeBin(dir)
		os.Exit(1)
	}
	code := m.Run()
	removeBin(dir)
	os.Exit(code)
}

// removeBin removes the directory TestMain built remit into; a failure
// leaves a temporary directory behind and does not fail the run.
func removeBin(dir string) {
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
	}
}

func skipIfShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped with -short: builds remit and runs a whole network (remit up)")
	}
}

// networkPorts is how many consecutive ports `remit init` gives a network:
// the gateway, three banks, and an admin (metrics) listener for each.
const networkPorts = 8

// freeBasePort returns a port P such that P..P+networkPorts-1 are free on
// 127.0.0.1 and reserved for this test until it ends: no other test, in
// this package or another test binary, gets them, even while this test's
// network is stopped between a stop and a restart.
func freeBasePort(t *testing.T) int {
	t.Helper()
	return freePortsFor(t, networkPorts)
}

// freePortsFor is freeBasePort for a network of n ports.
func freePortsFor(t *testing.T, n int) int {
	t.Helper()
	b, err := portlock.Reserve(t.Context(), n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Release)
	return b.Base
}

// portsFree reports whether base..base+n-1 can all be listened on now.
func portsFree(base, n int) bool {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close() // a probe: binding was the test
		}
	}()
	for p := base; p < base+n; p++ {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			return false
		}
		lns = append(lns, ln)
	}
	return true
}

// upProcess is a running `remit up`.
type upProcess struct {
	t    *testing.T
	cmd  *exec.Cmd
	dir  string
	port int

	stderr logtest.Buffer // up's and its children's logs

	mu     sync.Mutex // guards stdout, err and pids
	stdout bytes.Buffer
	ready  chan struct{} // closed when readyLine was printed
	exited chan struct{} // closed when up exited; err is then set
	err    error
	pids   map[string]int // from the banner: process name -> pid
	// metrics are the banner's metrics URLs: process name -> URL.
	metrics map[string]string
}

var bannerPID = regexp.MustCompile(`^\s+(\S+)\s+https://\S+\s+pid (\d+)(?:, metrics (http://\S+))?$`)

// startUp runs `remit up --dir dir --base-port port` and waits for its ready
// banner. Up runs in its own process group, which cleanup kills as a safety
// net so that a failed test leaves nothing behind.
func startUp(t *testing.T, dir string, port int) *upProcess {
	t.Helper()
	return startUpWith(t, dir, port, 4)
}

// startUpWith is startUp with more flags for `remit up` (--postgres,
// --replicas), and the number of processes its banner must list.
func startUpWith(t *testing.T, dir string, port, processes int, flags ...string) *upProcess {
	t.Helper()
	u := &upProcess{t: t, dir: dir, port: port, ready: make(chan struct{}), exited: make(chan struct{}), pids: map[string]int{}, metrics: map[string]string{}}
	u.cmd = exec.Command(remitBin, append([]string{"up", "--dir", dir, "--base-port", strconv.Itoa(port)}, flags...)...)
	u.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	u.cmd.Stderr = &u.stderr
	out, err := u.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := u.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := u.cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(-pgid, syscall.SIGKILL) // it may have exited already; exited says when it has
		<-u.exited
		if strings.Contains(u.logs(), "WARNING: DATA RACE") {
			t.Error("a remit process reported a data race")
		}
		if t.Failed() {
			u.dumpLogs()
		}
	})
	go func() {
		sc := bufio.NewScanner(out)
		readySeen := false
		for sc.Scan() {
			line := sc.Text()
			u.mu.Lock()
			u.stdout.WriteString(line + "\n")
			if m := bannerPID.FindStringSubmatch(line); m != nil {
				u.pids[m[1]], _ = strconv.Atoi(m[2])
				if m[3] != "" {
					u.metrics[m[1]] = m[3]
				}
			}
			u.mu.Unlock()
			if line == readyLine && !readySeen {
				readySeen = true
				close(u.ready)
			}
		}
		_, _ = io.Copy(io.Discard, out) // drain; Wait's result is what counts
		err := u.cmd.Wait()
		u.mu.Lock()
		u.err = err
		u.mu.Unlock()
		close(u.exited)
	}()

	select {
	case <-u.ready:
	case <-u.exited:
		u.dumpLogs()
		t.Fatalf("remit up exited before it was ready: %v", u.err)
	case <-time.After(startTimeout):
		u.dumpLogs()
		t.Fatalf("remit up printed no %q within %s", readyLine, startTimeout)
	}
	if len(u.pids) != processes {
		t.Fatalf("banner lists %d processes with pids (%v), want %d:\n%s", len(u.pids), u.pids, processes, u.output())
	}
	return u
}

func (u *upProcess) output() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.stdout.String()
}

func (u *upProcess) logs() string { return u.stderr.String() }

func (u *upProcess) dumpLogs() {
	u.t.Logf("remit up stdout:\n%s", u.output())
	u.t.Logf("remit up stderr:\n%s", u.logs())
}

// waitExit waits for up to exit and returns its exit status.
func (u *upProcess) waitExit() int {
	u.t.Helper()
	select {
	case <-u.exited:
	case <-time.After(stopTimeout):
		u.t.Fatalf("remit up did not exit within %s", stopTimeout)
	}
	var ee *exec.ExitError
	switch {
	case u.err == nil:
		return 0
	case errors.As(u.err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -int(ws.Signal())
		}
		return ee.ExitCode()
	default:
		u.t.Fatalf("remit up: %v", u.err)
		return 0
	}
}

// alive reports whether pid is a live process (a zombie is dead: it only
// waits for its new parent to reap it).
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		if fileExists("/proc/self/stat") {
			return false // procfs works: there is no such process
		}
		return syscall.Kill(pid, 0) == nil
	}
	// The state follows the command name, which is in parentheses.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z' && s[i+2] != 'X'
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// waitGone waits until none of pids is alive and the network's ports from
// base on (the API and admin listeners) are free again.
func waitGone(t *testing.T, pids map[string]int, base int) {
	t.Helper()
	deadline := time.Now().Add(stopTimeout)
	for {
		var left []string
		for name, pid := range pids {
			if alive(pid) {
				left = append(left, fmt.Sprintf("%s (pid %d)", name, pid))
			}
		}
		free := portsFree(base, networkPorts)
		if len(left) == 0 && free {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: still running: %v; ports %d..%d free: %v", stopTimeout, left, base, base+networkPorts-1, free)
		}
		time.Sleep(pollEvery)
	}
}

// creds is the part of credentials.json the tests use.
type creds struct {
	Users []struct {
		ClientID string `json:"client_id"`
		Password string `json:"password"`
	} `json:"users"`
}

func readPasswords(t *testing.T, dir string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "credentials.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c creds
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, u := range c.Users {
		out[u.ClientID] = u.Password
	}
	return out
}

// clientTLS trusts only the network's dev CA, like curl --cacert.
func clientTLS(t *testing.T, dir string) *tls.Config {
	t.Helper()
	conf, err := pki.ClientConfig(filepath.Join(dir, "certs", "ca.pem"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	return conf
}

// jsonClient is curl: Connect JSON over HTTPS with the standard library
// (HTTP/2 when the server offers it, as curl does).
type jsonClient struct {
	t    *testing.T
	base string
	http *http.Client
}

func newJSONClient(t *testing.T, dir string, port int) *jsonClient {
	t.Helper()
	conf := clientTLS(t, dir)
	conf.NextProtos = nil // let the transport offer h2 and http/1.1
	tr := &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &jsonClient{t: t, base: fmt.Sprintf("https://127.0.0.1:%d", port), http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// post sends body to procedure ("/pkg.Service/Method") with an optional
// bearer token and returns the status and response body.
func (c *jsonClient) post(token, procedure, body string) (int, []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+procedure, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("POST %s: %v", procedure, err)
	}
	defer res.Body.Close() //nolint:errcheck // read in full below; the read's error is the one that counts
	data, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatalf("POST %s: read body: %v", procedure, err)
	}
	return res.StatusCode, data
}
