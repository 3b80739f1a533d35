package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kefu-dev/kefu/retrieval"
)

// kbCmd is `kefu kb import|eval`: load any FAQ corpus, and measure retrieval on any query set.
func kbCmd(ctx context.Context, args []string, log *slog.Logger) error {
	if len(args) == 0 {
		return errors.New("usage: kefu kb import --file F | kefu kb eval --queries F")
	}
	fs := flag.NewFlagSet("kb "+args[0], flag.ContinueOnError)
	var cfg Config
	cfg.bindFlags(fs)
	switch args[0] {
	case "import":
		file := fs.String("file", "", "JSONL ({\"id\",\"question\",\"answer\"} plus optional language, title, alternatives) or CSV with those columns")
		format := fs.String("format", "", "jsonl or csv (default: from the file name)")
		lang := fs.String("language", "en", "language of rows that give none")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return kbImport(ctx, cfg, *file, *format, *lang, log)
	case "eval":
		queries := fs.String("queries", "", "JSONL: {\"query\", \"relevant\": [ids]} per line (an empty list: not covered)")
		mode := fs.String("mode", "all", "dense, lexical, hybrid, or all (each in turn)")
		split := fs.String("split", "all", "dev or test: a fixed half of the queries (by a hash of the text), so weights are tuned on one and reported on the other")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return kbEval(ctx, cfg, *queries, *mode, *split, log)
	}
	return fmt.Errorf("unknown kb command %q (want import or eval)", args[0])
}

// openKB opens the database and the knowledge store with the configured embedder (newEmbedder).
func openKB(ctx context.Context, cfg Config, log *slog.Logger) (*retrieval.Store, func(), error) {
	pool, cluster, err := openDatabase(ctx, cfg, log)
	closeAll := func() {
		if pool != nil {
			pool.Close()
		}
		if cluster != nil && cluster.Started() {
			_ = cluster.Stop(context.Background())
		}
	}
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	model, err := loadModel(cfg.ORTLib, cfg.ModelDir)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	embedder, err := newEmbedder(ctx, cfg, model)
	if err != nil {
		model.Close()
		closeAll()
		return nil, nil, err
	}
	return retrieval.NewStore(pool, embedder, cfg.KBThreshold, log), func() { closeEmbedder(embedder, model); model.Close(); closeAll() }, nil
}

func kbImport(ctx context.Context, cfg Config, file, format, lang string, log *slog.Logger) error {
	if file == "" {
		return errors.New("kb import: --file is required")
	}
	if format == "" {
		format = "jsonl"
		if strings.EqualFold(filepath.Ext(file), ".csv") {
			format = "csv"
		}
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	entries, rowErrs := retrieval.ParseImport(f, format, lang)
	f.Close()
	if len(rowErrs) > 0 {
		for _, e := range rowErrs[:min(len(rowErrs), 50)] {
			fmt.Fprintf(os.Stderr, "%s:%d: %s\n", file, e.Line, e.Message)
		}
		if len(rowErrs) > 50 {
			fmt.Fprintf(os.Stderr, "… and %d more\n", len(rowErrs)-50)
		}
		return fmt.Errorf("kb import: %d rejected row(s); nothing was imported", len(rowErrs))
	}
	kb, done, err := openKB(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer done()
	start := time.Now()
	if err := kb.Import(ctx, "kefu kb import", entries, func(n int) {
		el := time.Since(start).Seconds()
		fmt.Fprintf(os.Stderr, "\rimported %d/%d entries (%.0f/s)", n, len(entries), float64(n)/max(el, 1e-9))
	}); err != nil {
		fmt.Fprintln(os.Stderr)
		return err
	}
	fmt.Fprintf(os.Stderr, "\nimported %d entries in %.1fs\n", len(entries), time.Since(start).Seconds())
	return nil
}

func kbEval(ctx context.Context, cfg Config, file, mode, split string, log *slog.Logger) error {
	if file == "" {
		return errors.New("kb eval: --queries is required")
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	queries, err := retrieval.ReadEvalQueries(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if queries, err = retrieval.SplitQueries(queries, split); err != nil {
		return err
	}
	modes := []string{mode}
	if mode == "all" {
		modes = []string{retrieval.ModeDense, retrieval.ModeLexical, retrieval.ModeHybrid}
	}
	kb, done, err := openKB(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer done()
	if cfg.Demo { // an empty database gets the demo shop's knowledge, which the demo's query sets are for
		if _, err := kb.SeedDemo(ctx); err != nil {
			return err
		}
	}
	if _, err := kb.EmbedMissing(ctx); err != nil {
		return err
	}
	retrieval.WarmLexical()
	var results []retrieval.EvalResult
	for _, m := range modes {
		o := retrieval.DefaultSearch
		o.Mode = m
		kb.SetSearch(o)
		r, err := kb.Evaluate(ctx, queries, func(n int) { fmt.Fprintf(os.Stderr, "\r%s: %d/%d queries", m, n, len(queries)) })
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if len(results) == 1 {
		return enc.Encode(results[0])
	}
	return enc.Encode(results)
}
