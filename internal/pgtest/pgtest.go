// Package pgtest gives each test a migrated PostgreSQL schema of its own on the test database
// (KEFU_TEST_DATABASE_URL, which scripts/test sets to a private cluster with pgvector), so
// tests run in parallel and leave nothing behind.
package pgtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	pgxvec "github.com/pgvector/pgvector-go/pgx"

	"github.com/kefu-dev/kefu/internal/migrate"
)

// URL is the test database; a test that needs it fails, never skips, when it is unset.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("KEFU_TEST_DATABASE_URL")
	if u == "" {
		t.Fatal("pgtest: KEFU_TEST_DATABASE_URL is unset: run the tests with scripts/test")
	}
	return u
}

var extOnce sync.Once // the vector extension is created once per test binary, in public

func exec(t testing.TB, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, URL(t))
	if err != nil {
		t.Fatalf("pgtest: %v (start PostgreSQL with scripts/test; fail, never skip)", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// Schema gives the test a schema of its own, migrated with sources, and a pool whose
// search_path is that schema then public (where pgvector lives). The schema is dropped when
// the test ends.
func Schema(t testing.TB, sources ...migrate.Source) *pgxpool.Pool {
	t.Helper()
	pool, _ := SchemaURL(t, sources...)
	return pool
}

// SchemaURL is Schema that also returns a connection string with the same search_path, for
// code under test that opens its own pool.
func SchemaURL(t testing.TB, sources ...migrate.Source) (*pgxpool.Pool, string) {
	t.Helper()
	ctx := context.Background() // not t.Context(): it is cancelled before cleanups run
	extOnce.Do(func() { exec(t, "CREATE EXTENSION IF NOT EXISTS vector") })
	name := fmt.Sprintf("test_%016x", rand.Uint64())
	exec(t, "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize())
	t.Cleanup(func() { exec(t, "DROP SCHEMA "+pgx.Identifier{name}.Sanitize()+" CASCADE") })
	cfg, err := pgxpool.ParseConfig(URL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = name + ",public"
	cfg.AfterConnect = pgxvec.RegisterTypes
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(pool.Close) // last in, first out: the pool closes before the DROP
	if err := migrate.Up(ctx, pool, sources...); err != nil {
		t.Fatal(err)
	}
	return pool, WithSearchPath(URL(t), name+",public")
}

// WithSearchPath adds a search_path to a connection string in URL or key/value form; pgx
// sends unknown parameters of either form to the server as run-time settings.
func WithSearchPath(url, path string) string {
	if !strings.Contains(url, "://") {
		return url + " search_path=" + path
	}
	if strings.Contains(url, "?") {
		return url + "&search_path=" + path
	}
	return url + "?search_path=" + path
}
