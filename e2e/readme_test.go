package e2e_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/remitpay/remit/gen/remit/gateway/v1" // registers the API for the lookups below
)

// The README's quick start, exactly. If you change one, change the other:
// newcomers copy these lines, and .ci/run runs the test command.
const (
	quickStartUp   = "go run ./cmd/remit up"
	quickStartTest = "go test ./..."
)

// block is one fenced code block of a Markdown file.
type block struct {
	lang string
	text string
	line int // of the opening fence
}

func codeBlocks(t *testing.T, markdown string) []block {
	t.Helper()
	var (
		out  []block
		cur  *block
		body []string
	)
	for i, l := range strings.Split(markdown, "\n") {
		switch {
		case cur == nil && strings.HasPrefix(l, "```"):
			cur = &block{lang: strings.TrimSpace(strings.TrimPrefix(l, "```")), line: i + 1}
			body = nil
		case cur != nil && strings.TrimSpace(l) == "```":
			cur.text = strings.Join(body, "\n")
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			body = append(body, l)
		}
	}
	if cur != nil {
		t.Fatalf("README.md: code block at line %d is never closed", cur.line)
	}
	return out
}

// commands joins backslash-continued lines and drops comments.
func commands(sh string) []string {
	var out []string
	var cur strings.Builder
	for l := range strings.SplitSeq(sh, "\n") {
		if i := strings.Index(l, " #"); i >= 0 && !strings.Contains(l[:i], "'") {
			l = l[:i]
		}
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "#") {
			continue
		}
		if before, ok := strings.CutSuffix(l, `\`); ok {
			cur.WriteString(before + " ")
			continue
		}
		cur.WriteString(l)
		if s := strings.TrimSpace(cur.String()); s != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	return out
}

var (
	curlURL  = regexp.MustCompile(`https://[^/\s]+(/[\w.]+/\w+)`)
	dataArg  = regexp.MustCompile(`-d '([^']*)'`)
	grpcurlM = regexp.MustCompile(`\s([a-z][\w]*(?:\.[\w]+)+/\w+)(?:\s|$)`)
)

// healthCheck is grpc.health.v1.Health/Check, which is not in the global
// registry (connect's grpchealth registers its copy under another package).
const healthCheck = "grpc.health.v1.Health/Check"

// checkHealthJSON checks a health Check request or response body: an
// object with at most the given key, holding a string.
func checkHealthJSON(t *testing.T, data, key, where string, values ...string) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		t.Errorf("%s: %s is not a JSON object: %v", where, data, err)
		return
	}
	for k, v := range m {
		s, ok := v.(string)
		if k != key || !ok || len(values) > 0 && !slices.Contains(values, s) {
			t.Errorf("%s: %s: unexpected %q: %v", where, data, k, v)
		}
	}
}

// method finds the RPC a path such as /remit.gateway.v1.AuthService/Login
// (or "remit.gateway.v1.AuthService/Login") names.
func method(t *testing.T, path string) protoreflect.MethodDescriptor {
	t.Helper()
	svc, name, ok := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if !ok {
		t.Fatalf("%q is not /package.Service/Method", path)
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		t.Fatalf("README.md names service %s, which does not exist: %v", svc, err)
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		t.Fatalf("README.md: %s is not a service", svc)
	}
	md := sd.Methods().ByName(protoreflect.Name(name))
	if md == nil {
		t.Fatalf("README.md names %s/%s: the service has no such method", svc, name)
	}
	return md
}

// parseAs decodes JSON strictly (unknown fields are errors) as message md
// and, for a request, checks it passes the API's validation rules, so the
// server would not turn it away with invalid_argument.
func parseAs(t *testing.T, md protoreflect.MessageDescriptor, data, where string, request bool) {
	t.Helper()
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	msg := mt.New().Interface()
	if err := protojson.Unmarshal([]byte(data), msg); err != nil {
		t.Errorf("%s: %s is not a valid %s: %v", where, data, md.FullName(), err)
		return
	}
	if request {
		if err := protovalidate.Validate(msg); err != nil {
			t.Errorf("%s: %s breaks the API's rules: %v", where, data, err)
		}
	}
}

// TestReadme keeps README.md's quick start and tour true: the two quick
// start commands are there literally, CI runs the test command, and every
// curl and grpcurl example calls a real RPC with a request body (and,
// where shown, a response) that parses as the right message.
func TestReadme(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	blocks := codeBlocks(t, readme)

	var shLines []string
	for _, b := range blocks {
		if b.lang == "sh" {
			shLines = append(shLines, commands(b.text)...)
		}
	}
	for _, want := range []string{quickStartUp, quickStartTest} {
		if !slices.Contains(shLines, want) {
			t.Errorf("README.md has no sh code block line %q (the quick start)", want)
		}
	}
	ci, err := os.ReadFile("../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(quickStartTest) + `$`).Match(ci) {
		t.Errorf(".ci/run does not run the README's test command %q on a line of its own", quickStartTest)
	}
	if !strings.Contains(readme, readyLine) {
		t.Errorf("README.md does not show the ready line %q that remit up prints", readyLine)
	}

	var called []string
	for i, b := range blocks {
		if b.lang != "sh" {
			continue
		}
		for _, cmd := range commands(b.text) {
			switch {
			case strings.HasPrefix(cmd, "curl "):
				m := curlURL.FindStringSubmatch(cmd)
				if m == nil {
					t.Errorf("README.md line %d: curl command without an https://host/package.Service/Method URL: %s", b.line, cmd)
					continue
				}
				body := dataArg.FindStringSubmatch(cmd)
				if body == nil {
					t.Errorf("README.md line %d: curl command without a -d '...' JSON body: %s", b.line, cmd)
					continue
				}
				// A json block right after the command's block is its response.
				var response string
				if i+1 < len(blocks) && blocks[i+1].lang == "json" {
					response = blocks[i+1].text
				}
				if strings.TrimPrefix(m[1], "/") == healthCheck {
					called = append(called, healthCheck)
					checkHealthJSON(t, body[1], "service", "README.md health check request")
					if response != "" {
						checkHealthJSON(t, response, "status", "README.md health check response", "SERVING_STATUS_SERVING", "SERVING_STATUS_NOT_SERVING", "SERVING_STATUS_UNKNOWN", "SERVING", "NOT_SERVING", "UNKNOWN")
					}
					continue
				}
				md := method(t, m[1])
				called = append(called, string(md.FullName()))
				parseAs(t, md.Input(), body[1], "README.md curl "+m[1]+" request", true)
				if response != "" {
					parseAs(t, md.Output(), response, "README.md "+m[1]+" response", false)
				}
			case strings.HasPrefix(cmd, "grpcurl "):
				if !strings.Contains(cmd, "-cacert ") {
					t.Errorf("README.md line %d: grpcurl without -cacert does not work against the dev CA: %s", b.line, cmd)
				}
				m := grpcurlM.FindStringSubmatch(cmd)
				if m == nil {
					continue // e.g. `list`
				}
				if m[1] == healthCheck {
					called = append(called, healthCheck)
					continue
				}
				md := method(t, m[1])
				called = append(called, string(md.FullName()))
				if body := dataArg.FindStringSubmatch(cmd); body != nil {
					parseAs(t, md.Input(), body[1], "README.md grpcurl "+m[1]+" request", true)
				}
			}
		}
	}
	for _, want := range []string{
		"remit.gateway.v1.AuthService.Login",
		"remit.gateway.v1.PaymentService.CheckBalance",
		"remit.gateway.v1.PaymentService.MakePayment",
		healthCheck,
	} {
		if !slices.Contains(called, want) {
			t.Errorf("the README's tour no longer calls %s (found %v)", want, called)
		}
	}
}
