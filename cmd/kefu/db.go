package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	pgxvec "github.com/pgvector/pgvector-go/pgx"

	"github.com/kefu-dev/kefu/internal/localpg"
	"github.com/kefu-dev/kefu/internal/migrate"
)

// openDatabase opens cfg's database, migrated to the latest version. With no DatabaseURL it
// first starts the private cluster in cfg.PGDir and creates the kefu database in it. It
// returns what it opened even when a later step fails, so the caller can close it.
func openDatabase(ctx context.Context, cfg Config, log *slog.Logger) (*pgxpool.Pool, *localpg.Cluster, error) {
	var cluster *localpg.Cluster
	url := cfg.DatabaseURL
	if url == "" {
		c, err := localpg.New(cfg.PGDir, log)
		if err != nil {
			return nil, nil, err
		}
		if err := c.Start(ctx); err != nil {
			return nil, nil, err
		}
		cluster = c
		if err := c.EnsureDatabase(ctx, "kefu"); err != nil {
			return nil, cluster, err
		}
		url = c.URL("kefu")
	}
	pool, err := openPool(ctx, url)
	if err != nil {
		return nil, cluster, err
	}
	if err := migrate.Up(ctx, pool, sources()...); err != nil {
		return pool, cluster, err
	}
	return pool, cluster, nil
}

func openPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	// Every connection registers pgvector's types, which needs the extension: a fresh
	// database gets it first (the migrations would, but only after connecting).
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(pctx, cfg.ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	_, err = conn.Exec(pctx, "CREATE EXTENSION IF NOT EXISTS vector")
	conn.Close(pctx)
	if err != nil {
		return nil, fmt.Errorf("database: the vector extension (pgvector) is needed: %w", err)
	}
	cfg.AfterConnect = pgxvec.RegisterTypes
	if !strings.Contains(url, "pool_max_conns") {
		// pgx's default (the number of cores, at least 4) is too few for turns that hold a
		// connection through a webhook call; PostgreSQL's default limit is 100.
		cfg.MaxConns = 32
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("database: %w", err)
	}
	return pool, nil
}
