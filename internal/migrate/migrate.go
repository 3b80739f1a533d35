// Package migrate applies the embedded SQL migrations that each part of Kefu owns.
//
// Every package that owns tables exposes a Source: its name and a folder of numbered files
// (001_sessions.sql, 002_…). Up applies the sources in the order given, each with its own
// version table (<name>_schema_version), through jackc/tern, which holds an advisory lock so
// that two instances starting together migrate once. An applied file is never edited: add the
// next number.
package migrate

import (
	"context"
	"fmt"
	"io/fs"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"
)

// Source is one package's migrations.
type Source struct {
	Name string // "dialog": the version table is dialog_schema_version
	FS   fs.FS  // holds NNN_name.sql files at its root
}

// Up brings every source to its latest version, in order.
func Up(ctx context.Context, pool *pgxpool.Pool, sources ...Source) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Release()
	for _, s := range sources {
		m, err := migrate.NewMigrator(ctx, conn.Conn(), versionTable(ctx, conn.Conn(), s.Name))
		if err != nil {
			return fmt.Errorf("migrate %s: %w", s.Name, err)
		}
		if err := m.LoadMigrations(s.FS); err != nil {
			return fmt.Errorf("migrate %s: load: %w", s.Name, err)
		}
		if err := m.Migrate(ctx); err != nil {
			return fmt.Errorf("migrate %s: %w", s.Name, err)
		}
	}
	return nil
}

// Version reports the applied and latest version of a source.
func Version(ctx context.Context, pool *pgxpool.Pool, s Source) (current, latest int32, err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Release()
	m, err := migrate.NewMigrator(ctx, conn.Conn(), versionTable(ctx, conn.Conn(), s.Name))
	if err != nil {
		return 0, 0, err
	}
	if err := m.LoadMigrations(s.FS); err != nil {
		return 0, 0, err
	}
	current, err = m.GetCurrentVersion(ctx)
	return current, int32(len(m.Migrations)), err
}

var plainName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// versionTable is the source's version table in the connection's current schema. Qualified,
// so that a schema early in the search_path (a test's, a benchmark's) never mistakes the
// version table of a schema later in it (public's) for its own.
func versionTable(ctx context.Context, conn *pgx.Conn, name string) string {
	table := name + "_schema_version"
	var schema string
	if err := conn.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil || !plainName.MatchString(schema) {
		return table
	}
	return schema + "." + table
}
