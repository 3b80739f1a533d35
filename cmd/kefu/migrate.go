package main

import (
	"context"
	"flag"
	"log/slog"

	"github.com/kefu-dev/kefu/internal/localpg"
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
	if cfg.DatabaseURL == "" {
		c, err := localpg.New(cfg.PGDir, log)
		if err != nil {
			return err
		}
		if err := c.Start(ctx); err != nil {
			return err
		}
		if c.Started() { // leave a cluster that a running server uses alone
			defer c.Stop(context.WithoutCancel(ctx)) //nolint:errcheck // logged by localpg
		}
		if err := c.EnsureDatabase(ctx, "kefu"); err != nil {
			return err
		}
		cfg.DatabaseURL = c.URL("kefu")
	}
	pool, err := openPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := migrate.Up(ctx, pool, sources()...); err != nil {
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
