package main

import (
	"context"
	"flag"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kefu-dev/kefu/internal/migrate"
)

// migrateCmd applies every migration and reports the versions.
func migrateCmd(ctx context.Context, args []string, log *slog.Logger) error {
	var cfg Config
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	cfg.bindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	return withDatabase(ctx, cfg, log, func(pool *pgxpool.Pool) error {
		for _, s := range sources() {
			cur, latest, err := migrate.Version(ctx, pool, s)
			if err != nil {
				return err
			}
			log.Info("migrated", "part", s.Name, "version", cur, "latest", latest)
		}
		return nil
	})
}

// withDatabase opens the database (migrated; the private cluster when cfg names no database),
// runs fn on it and closes it. A private cluster is stopped afterwards only when this command
// started it: one a running server uses is left alone.
func withDatabase(ctx context.Context, cfg Config, log *slog.Logger, fn func(*pgxpool.Pool) error) error {
	pool, cluster, err := openDatabase(ctx, cfg, log)
	// Deferred before the pool's Close, so it runs after it.
	if cluster != nil && cluster.Started() {
		defer cluster.Stop(context.WithoutCancel(ctx)) //nolint:errcheck // logged by localpg
	}
	if pool != nil {
		defer pool.Close()
	}
	if err != nil {
		return err
	}
	return fn(pool)
}
