// Command kefu is the Kefu customer-service bot engine.
//
//	kefu serve      run the server (the default)
//	kefu migrate    apply database migrations and exit
//	kefu pg start|stop|url   manage the private PostgreSQL cluster
//	kefu nlu train|eval|bench  train an intent model, measure it, time it
//	kefu flows check DIR       check dialog flow files
//	kefu test conversations DIR  run conversation tests
//	kefu dialog bench          turn throughput and latency through the engine
//	kefu kb import|eval|calibrate|bench  load an FAQ corpus; measure retrieval; time it at scale
//	kefu handoff sim|bench     the routing queue against Erlang C; its speed at a large desk
//	kefu accounts add|passwd|list  create an account (the first admin), reset a password, list them
//
// Run `kefu <command> -h` for the flags of each command; every flag also has an environment
// variable, listed in the README.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()}))
	slog.SetDefault(logger)
	if err := run(ctx, os.Args[1:], logger); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		logger.Error("kefu failed", "err", err)
		os.Exit(1)
	}
}

func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("KEFU_LOG_LEVEL"))); err != nil {
		return slog.LevelInfo
	}
	return l
}

func run(ctx context.Context, args []string, log *slog.Logger) error {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serveCmd(ctx, args, log)
	case "migrate":
		return migrateCmd(ctx, args, log)
	case "pg":
		return pgCmd(ctx, args, log)
	case "nlu":
		return nluCmd(ctx, args, log)
	case "flows":
		return flowsCmd(ctx, args, log)
	case "test":
		return testCmd(ctx, args, log)
	case "dialog":
		return dialogCmd(ctx, args, log)
	case "kb":
		return kbCmd(ctx, args, log)
	case "handoff":
		return handoffCmd(ctx, args, log)
	case "loadgen":
		return loadgenCmd(ctx, args, log)
	case "accounts":
		return accountsCmd(ctx, args, log)
	case "help", "-h", "--help":
		fmt.Fprintln(os.Stderr, "usage: kefu [serve|migrate|pg|nlu|flows|test|dialog|kb|handoff|loadgen|accounts] [flags]")
		return nil
	default:
		return fmt.Errorf("unknown command %q (want serve, migrate, pg, nlu, flows, test, dialog, kb, handoff, loadgen or accounts)", cmd)
	}
}
