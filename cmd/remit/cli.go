package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/remitpay/remit/internal/logging"
	"github.com/remitpay/remit/internal/printable"
)

// Exit statuses of remit. Client commands that leave a payment queued in
// the outbox exit with exitQueued (3; see session.go).
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// command is one `remit` subcommand.
type command struct {
	// name is what the user types: `remit <name>`.
	name string
	// summary is the one line `remit --help` shows.
	summary string
	// usage is the synopsis, e.g. "remit certs --dir DIR [--force]".
	usage string
	// help is the long description shown by `remit <name> --help`, before
	// the flags.
	help string
	// examples are shown after the flags, one command per line (lines
	// starting with # are comments).
	examples string
	// flags registers the command's flags on fs and returns the function
	// that does the work once they are parsed, called with the positional
	// arguments. Flag values live in the closure, so commands share no state.
	flags func(fs *flag.FlagSet) runFunc
}

// runFunc runs a command with its positional arguments.
type runFunc func(ctx context.Context, e *env, args []string) error

// env is what every command gets besides its own flags: where to write, and
// the global flags.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// logFormat is --log-format: "text", "json", or "" when not given.
	logFormat string
	// json is set when the command runs with --json: an error is then
	// also reported as {"error": {...}} on stdout, unless the command
	// already printed its JSON there.
	json bool
	// out counts what was written to stdout.
	out *countingWriter
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// errHelp is returned when the user asked for help; it exits 0.
var errHelp = errors.New("help requested")

// usageError is a mistake in how remit was invoked: wrong flags, missing
// arguments. It exits 2 and points at --help. reason, if set, is the
// ErrorInfo-style reason --json reports with it.
type usageError struct{ msg, reason string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// run is remit without the process: tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runEnv(ctx, &env{stdin: os.Stdin, stdout: stdout, stderr: stderr}, args)
}

// runEnv is run with every stream given (tests feed stdin through it).
func runEnv(ctx context.Context, e *env, args []string) int {
	e.out = &countingWriter{w: printable.Writer(e.stdout)}
	e.stdout = e.out
	e.json = jsonRequested(args)
	stdout, stderr := e.stdout, e.stderr
	global := flag.NewFlagSet("remit", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	e.globalFlags(global)
	err := global.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printMainHelp(stdout)
		return exitOK
	case err != nil:
		return e.fail(nil, usagef("%v", err))
	}
	args = global.Args()
	if len(args) == 0 {
		printMainHelp(stderr)
		return exitUsage
	}
	name := args[0]
	if name == "help" {
		if len(args) > 1 {
			if c := lookup(args[1]); c != nil {
				fs, _ := e.newFlagSet(c)
				printHelp(stdout, c, fs)
				return exitOK
			}
		}
		printMainHelp(stdout)
		return exitOK
	}
	c := lookup(name)
	if c == nil {
		return e.fail(nil, usagef("unknown command %q", name))
	}
	return e.fail(c, e.runCommand(ctx, c, args[1:]))
}

func lookup(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}

// runCommand parses c's flags (which may come before, after or between the
// positional arguments) and runs it.
func (e *env) runCommand(ctx context.Context, c *command, args []string) error {
	fs, runC := e.newFlagSet(c)
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, errHelp) {
		printHelp(e.stdout, c, fs)
		return nil
	}
	if err != nil {
		return err
	}
	if f := fs.Lookup("json"); f != nil {
		e.json = f.Value.String() == "true"
	}
	if e.logFormat != "" {
		f, err := logging.ParseFormat(e.logFormat)
		if err != nil {
			return usagef("--log-format %q: want text or json", e.logFormat)
		}
		e.logFormat = f
	}
	return runC(ctx, e, pos)
}

// jsonRequested reports whether args ask for --json, for errors found
// before (or while) the flags are parsed.
func jsonRequested(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "--json", "-json", "--json=true", "-json=true", "--json=1", "-json=1":
			return true
		}
	}
	return false
}

// fail reports err (nil: success) and returns the exit status. With
// --json, a command that failed before printing its JSON document gets
// {"error": {"code", "reason", "message"}} on stdout, so every failure of
// every command looks the same to a script; the message also goes to
// stderr and the exit status is the same as without --json.
func (e *env) fail(c *command, err error) int {
	if err == nil {
		return exitOK
	}
	if e.json && (e.out == nil || e.out.n == 0) {
		_ = printJSON(e.stdout, struct {
			Error *errorJSON `json:"error"`
		}{newErrorJSON(err)})
	}
	prefix, helpCmd := "remit", "remit --help"
	if c != nil {
		prefix, helpCmd = "remit "+c.name, "remit "+c.name+" --help"
	}
	if _, ok := errors.AsType[*usageError](err); ok {
		fmt.Fprintf(e.stderr, "%s: %s\nRun '%s' for usage.\n", prefix, shown(err), helpCmd)
		return exitUsage
	}
	if xe, ok := errors.AsType[*exitError](err); ok {
		// The command printed its outcome; xe.err adds to it, if set.
		if xe.err != nil {
			fmt.Fprintf(e.stderr, "%s: %s\n", prefix, shown(xe.err))
		}
		return xe.code
	}
	fmt.Fprintf(e.stderr, "%s: %s\n", prefix, shown(err))
	return exitFailure
}

func (e *env) globalFlags(fs *flag.FlagSet) {
	fs.StringVar(&e.logFormat, "log-format", e.logFormat, "`text|json` logs: text for people, json for machines (default: text on a terminal, json otherwise)")
}

// newFlagSet returns c's flag set, including the global flags so that they
// may also be given after the command name, and c's run function bound to it.
func (e *env) newFlagSet(c *command) (*flag.FlagSet, runFunc) {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by fail, help by printHelp
	runC := c.flags(fs)
	e.globalFlags(fs)
	return fs, runC
}

// parseInterspersed parses fs from args, allowing flags after positional
// arguments (`remit users add alice --role admin`), and returns the
// positional arguments. Everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelp
		}
		if err != nil {
			return nil, &usageError{msg: err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// multiFlag is a repeatable string flag: --bank a --bank b.
type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, ",") }

func (m *multiFlag) Set(v string) error {
	*m = append(*m, v)
	return nil
}

func printMainHelp(w io.Writer) {
	fmt.Fprint(w, `remit runs Remit, a payment gateway in front of independent bank servers.

Usage: remit [--log-format text|json] <command> [flags] [arguments]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Global flags (before or after the command):
  --log-format text|json   log format; default: text on a terminal, json otherwise

Quick start:
  remit up                 # a whole local network in ./.remit, over TLS
  remit login alice        # in another terminal; password in .remit/credentials.json
  remit pay --to bank-b/bob --amount 12.50
  remit balance

Exit status: 0 success, 1 failed or declined, 2 usage error, 3 payment
queued in the outbox (not sent yet; 'remit outbox flush' sends it).

Run 'remit <command> --help' for a command's flags and examples.
`)
}

func printHelp(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", c.usage, strings.TrimSpace(c.help))
	fmt.Fprint(w, "\nFlags:\n")
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		if name != "" {
			name = " " + name
		}
		fmt.Fprintf(w, "  --%s%s\n", f.Name, name)
		fmt.Fprintf(w, "        %s", usage)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
	if ex := strings.TrimSpace(c.examples); ex != "" {
		fmt.Fprint(w, "\nExamples:\n")
		for line := range strings.SplitSeq(ex, "\n") {
			fmt.Fprintf(w, "  %s\n", strings.TrimSpace(line))
		}
	}
}
