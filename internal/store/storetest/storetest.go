// Package storetest gives each test its own database on the backend the
// test run selects: an SQLite file in the test's directory by default, or,
// when REMIT_TEST_POSTGRES holds a postgres:// URL, a fresh schema in that
// PostgreSQL database, dropped when the test ends. CI runs the storage
// tests once per backend (.ci/run).
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/remitpay/remit/internal/store"
)

// Env is the variable that selects PostgreSQL: the URL of a database the
// tests may create schemas in.
const Env = "REMIT_TEST_POSTGRES"

// Postgres is the PostgreSQL URL of this test run, or "" for SQLite.
func Postgres() string { return os.Getenv(Env) }

// Backend names the backend of this test run: "sqlite" or "postgres".
func Backend() string {
	if Postgres() != "" {
		return "postgres"
	}
	return "sqlite"
}

// Target is where a test's store called name lives: dir/name.db, or a new
// PostgreSQL schema (see the package comment). Two calls give two
// databases; the same target opened twice is the same database.
func Target(tb testing.TB, dir, name string) string {
	tb.Helper()
	base := Postgres()
	if base == "" {
		return filepath.Join(dir, name+".db")
	}
	return Schema(tb, base)
}

// Schema creates a fresh schema in the PostgreSQL database at base and
// returns base with search_path set to it. The schema is dropped when tb
// ends.
func Schema(tb testing.TB, base string) string {
	tb.Helper()
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("storetest: %s: %v", Env, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := store.Open(ctx, base)
	if err != nil {
		tb.Fatalf("storetest: %v", err)
	}
	_, err = admin.ExecContext(ctx, `CREATE SCHEMA `+schema)
	if err := errors.Join(err, admin.Close()); err != nil {
		tb.Fatalf("storetest: create schema: %v", err)
	}
	tb.Cleanup(func() { drop(tb, base, schema) })
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func drop(tb testing.TB, base, schema string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := store.Open(ctx, base)
	if err != nil {
		tb.Errorf("storetest: drop %s: %v", schema, err)
		return
	}
	_, err = admin.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`)
	if err := errors.Join(err, admin.Close()); err != nil {
		tb.Errorf("storetest: drop %s: %v", schema, err)
	}
}
