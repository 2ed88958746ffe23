// Package e2e holds Remit's end-to-end tests. They build the remit binary
// once, run `remit up` in a temporary directory on free ports, and drive the
// network from outside exactly as a user would: Connect JSON over plain
// net/http (what curl sends), gRPC and gRPC-Web clients, health checks, and
// kill -9, and the browser wallet in headless Chromium (web_test.go). They
// also keep README.md's quick start true.
//
// The tests are skipped with -short. They need nothing but the Go
// toolchain, and Debian's chromium at /usr/bin/chromium for the browser
// tests (.ci/run installs it; without it they skip): `go test ./e2e/`
// builds what it runs.
package e2e
