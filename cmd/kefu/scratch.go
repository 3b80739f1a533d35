package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	pgxvec "github.com/pgvector/pgvector-go/pgx"

	"github.com/kefu-dev/kefu/internal/localpg"
	"github.com/kefu-dev/kefu/internal/migrate"
)

// scratchName is what openScratch names its schemas.
var scratchName = regexp.MustCompile(`^kefu_scratch_[a-z0-9]+$`)

// scratch is a throwaway schema for commands that write test data (conversation tests,
// benchmarks): they never touch the served data, and the schema goes when they finish.
type scratch struct {
	Pool    *pgxpool.Pool
	admin   *pgxpool.Pool
	cluster *localpg.Cluster
	name    string
	keep    bool // Close leaves the schema
}

// openScratch opens cfg's database (starting the private cluster when no URL is given) and
// makes a new schema in it, migrated. maxConns bounds the pool (0: pgx's default).
func openScratch(ctx context.Context, cfg Config, maxConns int32, log *slog.Logger) (*scratch, error) {
	admin, cluster, err := openDatabase(ctx, cfg, log)
	// An existing schema (kefu dialog verify) is never dropped here, whatever happens.
	s := &scratch{admin: admin, cluster: cluster, name: cfg.scratchSchema, keep: cfg.scratchSchema != ""}
	if err != nil {
		s.Close()
		return nil, err
	}
	if s.name != "" {
		var exists bool
		if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, s.name).Scan(&exists); err != nil || !exists {
			s.Close()
			return nil, fmt.Errorf("scratch schema %q does not exist (%v)", s.name, err)
		}
	}
	if s.name == "" {
		s.name = "kefu_scratch_" + strings.ToLower(rand.Text()[:10])
		if _, err := admin.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{s.name}.Sanitize()); err != nil {
			s.Close()
			return nil, fmt.Errorf("scratch schema: %w", err)
		}
	}
	pc := admin.Config().Copy()
	pc.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{s.name}.Sanitize() + ",public"
	pc.AfterConnect = pgxvec.RegisterTypes
	if maxConns > 0 {
		pc.MaxConns, pc.MinConns = maxConns, maxConns // opened up front, not in the middle of a measurement
	}
	if s.Pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		s.Close()
		return nil, err
	}
	if err := migrate.Up(ctx, s.Pool, sources()...); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close drops the schema and closes everything openScratch opened.
func (s *scratch) Close() {
	if s.Pool != nil {
		s.Pool.Close()
	}
	if s.admin != nil && !s.keep {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, _ = s.admin.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{s.name}.Sanitize()+" CASCADE")
		cancel()
	}
	if s.admin != nil {
		s.admin.Close()
	}
	if s.cluster != nil && s.cluster.Started() {
		_ = s.cluster.Stop(context.Background())
	}
}
