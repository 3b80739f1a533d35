package main

import (
	"context"
	"flag"
	"log/slog"

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
	pool, cluster, err := openDatabase(ctx, cfg, log)
	// Stop the private cluster only when this command started it: leave one a running
	// server uses alone. Deferred before the pool's Close, so it runs after it.
	if cluster != nil && cluster.Started() {
		defer cluster.Stop(context.WithoutCancel(ctx)) //nolint:errcheck // logged by localpg
	}
	if pool != nil {
		defer pool.Close()
	}
	if err != nil {
		return err
	}
	for _, s := range sources() {
		cur, latest, err := migrate.Version(ctx, pool, s)
		if err != nil {
			return err
		}
		log.Info("migrated", "part", s.Name, "version", cur, "latest", latest)
	}
	return nil
}
