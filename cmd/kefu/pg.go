package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"

	"github.com/kefu-dev/kefu/internal/localpg"
)

// pgCmd manages the private PostgreSQL cluster: `kefu pg start|stop|url [-dir D] [-db NAME]`.
// `start` prints the connection string of the database, which it creates with pgvector.
func pgCmd(ctx context.Context, args []string, log *slog.Logger) error {
	if len(args) == 0 {
		return errors.New("usage: kefu pg start|stop|url [-dir var/pg] [-db kefu]")
	}
	action := args[0]
	fs := flag.NewFlagSet("pg", flag.ContinueOnError)
	dir := fs.String("dir", envOr("KEFU_PG_DIR", "var/pg"), "folder of the private cluster")
	db := fs.String("db", "kefu", "database to create and print")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	c, err := localpg.New(*dir, log)
	if err != nil {
		return err
	}
	switch action {
	case "start":
		if err := c.Start(ctx); err != nil {
			return err
		}
		if err := c.EnsureDatabase(ctx, *db); err != nil {
			return err
		}
		fmt.Println(c.URL(*db))
	case "stop":
		return c.Stop(ctx)
	case "url":
		fmt.Println(c.URL(*db))
	default:
		return fmt.Errorf("kefu pg: unknown action %q (want start, stop or url)", action)
	}
	return nil
}
