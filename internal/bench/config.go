package bench

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults of `remit bench`.
const (
	DefaultCustomers   = 48
	DefaultDuration    = 30 * time.Second
	DefaultConcurrency = "1,16,64,256"
	// MaxConcurrency bounds one level: every worker is a goroutine with a
	// payment in flight.
	MaxConcurrency = 10000
)

// Config configures [Run].
type Config struct {
	// Customers is how many customers the bench's own network opens (at
	// least 2). With Gateway set it is ignored: every customer in the
	// credentials file takes part.
	Customers int
	// Duration is how long payments run at each concurrency level.
	Duration time.Duration
	// CeilingDuration is how long the health-check ceiling runs at each
	// level; 0 means min(Duration/3, 5s), at least 1s, in tenths of a
	// second.
	CeilingDuration time.Duration
	// Concurrency lists the levels, each the number of payments kept in
	// flight.
	Concurrency []int
	// SameBankRatio is the fraction of payments whose payee banks with the
	// payer, in [0, 1]; the rest cross banks.
	SameBankRatio float64

	// Gateway, CA and Credentials name an existing network instead of a
	// new one: its URL, the CA file that signed its certificate, and a
	// credentials.json (as `remit init` writes) with the customers and an
	// auditor or admin for the conservation check. A comma-separated
	// Gateway lists the replicas of one gateway: the customers are spread
	// over them (customer i mainly uses replica i mod n and fails over to
	// the others).
	Gateway, CA, Credentials string

	// Postgres and Replicas run the bench's own network on that PostgreSQL
	// database (schemas of its own, dropped afterwards) with that many
	// gateway replicas, the customers spread over them.
	Postgres string
	Replicas int

	// Executable is the remit binary the bench's own network runs; ""
	// means the running executable.
	Executable string
	// Progress writes a live progress line to Stderr (for a terminal).
	Progress bool
	// Stderr receives progress and notes.
	Stderr io.Writer
}

// ceiling returns how long the health-check ceiling runs.
func (c *Config) ceiling() time.Duration {
	if c.CeilingDuration > 0 {
		return c.CeilingDuration
	}
	return max(min(c.Duration/3, 5*time.Second), time.Second).Truncate(100 * time.Millisecond)
}

// Validate reports the first problem with c, in the words of the flags.
func (c *Config) Validate() error {
	switch {
	case c.Duration <= 0:
		return fmt.Errorf("--duration %s: want a positive duration", c.Duration)
	case len(c.Concurrency) == 0:
		return errors.New("--concurrency: want at least one level")
	case c.SameBankRatio < 0 || c.SameBankRatio > 1:
		return fmt.Errorf("--same-bank-ratio %g: want a fraction between 0 and 1", c.SameBankRatio)
	case c.Gateway == "" && c.Customers < 2:
		return fmt.Errorf("--customers %d: want at least 2 (a payment needs a payer and a payee)", c.Customers)
	case c.Gateway != "" && (c.CA == "" || c.Credentials == ""):
		return errors.New("--gateway needs --ca and --credentials (a credentials.json as `remit init` writes)")
	case c.Gateway == "" && (c.CA != "" || c.Credentials != ""):
		return errors.New("--ca and --credentials go with --gateway")
	case c.Gateway != "" && (c.Postgres != "" || c.Replicas > 1):
		return errors.New("--postgres and --replicas are for the bench's own network, not with --gateway")
	case c.Replicas > 1 && c.Postgres == "":
		return errors.New("--replicas: replicas share one PostgreSQL database; give it with --postgres")
	}
	return nil
}

// ParseConcurrency parses a comma-separated list of concurrency levels such
// as "1,16,64,256". Each must be between 1 and [MaxConcurrency]; duplicates
// are refused, order is kept.
func ParseConcurrency(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > MaxConcurrency {
			return nil, fmt.Errorf("--concurrency %q: %q is not a number between 1 and %d", s, f, MaxConcurrency)
		}
		if slices.Contains(out, n) {
			return nil, fmt.Errorf("--concurrency %q: %d is listed twice", s, n)
		}
		out = append(out, n)
	}
	return out, nil
}
