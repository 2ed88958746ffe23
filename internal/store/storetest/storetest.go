// Package storetest gives each test its own database on the backend the
// test run selects: an SQLite file in the test's directory by default, or,
// when REMIT_TEST_POSTGRES holds a postgres:// URL, a fresh schema in that
// PostgreSQL database, dropped when the test ends. CI runs the storage
// tests once per backend (.ci/run).
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"sync"
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

// targets remembers the schema of each dir and name, so that a store
// reopened on the same directory (a restart) opens the same database on
// PostgreSQL as it does on SQLite.
var targets sync.Map // dir/name -> target

// Target is where a test's store called name, in directory dir, lives:
// dir/name.db, or a PostgreSQL schema made for it on the first call (see
// the package comment). Later calls with the same dir and name give the
// same database, other names or directories another.
func Target(tb testing.TB, dir, name string) string {
	tb.Helper()
	path := filepath.Join(dir, name+".db")
	base := Postgres()
	if base == "" {
		return path
	}
	if v, ok := targets.Load(path); ok {
		return v.(string) //nolint:forcetypeassert // only strings are stored
	}
	target := Schema(tb, base)
	targets.Store(path, target)
	return target
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
	admin, err := store.Open(ctx, base, "storetest")
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
	admin, err := store.Open(ctx, base, "storetest")
	if err != nil {
		tb.Errorf("storetest: drop %s: %v", schema, err)
		return
	}
	_, err = admin.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`)
	if err := errors.Join(err, admin.Close()); err != nil {
		tb.Errorf("storetest: drop %s: %v", schema, err)
	}
}

// Contents is everything the database at target holds, for tests that
// look for a secret in it: the bytes of its SQLite files (the database,
// its WAL and journal), or on PostgreSQL every row of every table of its
// schema as PostgreSQL prints it (BYTEA as \x and hex), by table.
func Contents(tb testing.TB, target string) map[string][]byte {
	tb.Helper()
	out := map[string][]byte{}
	if !store.IsPostgres(target) {
		files, err := filepath.Glob(target + "*")
		if err != nil || len(files) == 0 {
			tb.Fatal("storetest: no database files", files, err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				tb.Fatal(err)
			}
			out[filepath.Base(f)] = b
		}
		return out
	}
	ctx := context.Background()
	db, err := store.OpenReader(ctx, target)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() {
		if err := db.Close(); err != nil {
			tb.Error(err)
		}
	}()
	rows, err := db.QueryContext(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			tb.Fatal(err)
		}
		tables = append(tables, name)
	}
	if err := rows.Err(); err != nil || len(tables) == 0 {
		tb.Fatal("storetest: no tables", tables, err)
	}
	for _, table := range tables {
		out[table] = tableText(tb, db, table)
	}
	return out
}

// tableText is every row of table as PostgreSQL prints it, a line each.
func tableText(tb testing.TB, db *sql.DB, table string) []byte {
	tb.Helper()
	r, err := db.QueryContext(context.Background(), `SELECT r::text FROM `+table+` r`) //nolint:gosec // names from the catalogue
	if err != nil {
		tb.Fatal(err)
	}
	defer r.Close()
	var b bytes.Buffer
	for r.Next() {
		var line string
		if err := r.Scan(&line); err != nil {
			tb.Fatal(err)
		}
		b.WriteString(line + "\n")
	}
	if err := r.Err(); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}
