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

// kbCmd is `kefu kb import|eval|calibrate|bench`: load any FAQ corpus, measure retrieval on any
// query set, and time import and search at scale (kbbench.go).
func kbCmd(ctx context.Context, args []string, log *slog.Logger) error {
	if len(args) == 0 {
		return errors.New("usage: kefu kb import --file F | kefu kb eval --queries F | kefu kb calibrate | kefu kb bench")
	}
	if args[0] == "bench" {
		return kbBench(ctx, args[1:], log)
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
	case "calibrate":
		queries := fs.String("queries", "", "JSONL questions the knowledge answers: {\"query\", \"relevant\": [ids]}")
		unanswerable := fs.String("unanswerable", "", "JSONL questions it does not: {\"query\"} (or an empty relevant list)")
		split := fs.String("split", "dev", "the half of each file to fit on (dev; report on test with kb eval --split test)")
		out := fs.String("out", "", "where to write the model (default: the -kb-answerability folder, named after the embedder)")
		dump := fs.String("dump", "", "also write each question's features and label to this JSONL file")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return kbCalibrate(ctx, cfg, *queries, *unanswerable, *split, *out, *dump, log)
	}
	return fmt.Errorf("unknown kb command %q (want import, eval, calibrate or bench)", args[0])
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
	kb := retrieval.NewStore(pool, embedder, cfg.KBThreshold, log)
	if err := applyAnswerability(cfg, kb, log); err != nil {
		closeEmbedder(embedder, model)
		model.Close()
		closeAll()
		return nil, nil, err
	}
	return kb, func() { closeEmbedder(embedder, model); model.Close(); closeAll() }, nil
}

// applyAnswerability gives kb the answerability model fitted for its embedder, when the
// -kb-answerability folder has one; without one the store answers on the cosine threshold.
func applyAnswerability(cfg Config, kb *retrieval.Store, log *slog.Logger) error {
	a, err := answerabilityFor(cfg, kb.EmbedderID(), log)
	if err != nil || a == nil {
		return err
	}
	return kb.SetAnswerability(a)
}

// answerabilityFor is the answerability model fitted for embedder, or nil.
func answerabilityFor(cfg Config, embedder string, log *slog.Logger) (*retrieval.Answerability, error) {
	if cfg.KBAnswerability == "off" {
		return nil, nil
	}
	dir, err := findDir(cfg.KBAnswerability)
	if err != nil {
		log.Info("no answerability models: answering on the cosine threshold", "dir", cfg.KBAnswerability)
		return nil, nil
	}
	path := retrieval.AnswerabilityFile(dir, embedder)
	a, err := retrieval.LoadAnswerability(path)
	if err != nil {
		return nil, err
	}
	if a == nil {
		log.Info("no answerability model for this embedder: answering on the cosine threshold (fit one with kefu kb calibrate)",
			"embedder", embedder, "threshold", cfg.KBThreshold)
		return nil, nil
	}
	log.Info("answerability model loaded", "file", path, "threshold", a.Threshold)
	return a, nil
}

func readQueries(file, split string) ([]retrieval.EvalQuery, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	qs, err := retrieval.ReadEvalQueries(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return retrieval.SplitQueries(qs, split)
}

// kbCalibrate fits the answerability model on a split of answerable and unanswerable
// questions and writes it where kefu serve finds it for this embedder.
func kbCalibrate(ctx context.Context, cfg Config, queries, unanswerable, split, out, dump string, log *slog.Logger) error {
	if queries == "" || unanswerable == "" {
		return errors.New("kb calibrate: --queries and --unanswerable are required")
	}
	qs, err := readQueries(queries, split)
	if err != nil {
		return err
	}
	us, err := readQueries(unanswerable, split)
	if err != nil {
		return err
	}
	for i := range us {
		us[i].Relevant = nil
	}
	modelDir := cfg.KBAnswerability
	cfg.KBAnswerability = "off" // the features do not depend on it; fit from scratch
	kb, done, err := openKB(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer done()
	if cfg.Demo {
		if _, err := kb.SeedDemoFAQ(ctx); err != nil {
			return err
		}
	}
	if _, err := kb.EmbedMissing(ctx); err != nil {
		return err
	}
	retrieval.WarmLexical()
	all := append(qs, us...)
	samples, err := kb.Samples(ctx, all, func(n int) { fmt.Fprintf(os.Stderr, "\rsearched %d/%d questions", n, len(all)) })
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return err
	}
	if dump != "" {
		var b strings.Builder
		for i, smp := range samples {
			line, _ := json.Marshal(map[string]any{"query": all[i].Query, "language": all[i].Language, "answerable": smp.Answerable, "features": smp.Features})
			b.Write(append(line, '\n'))
		}
		if err := os.WriteFile(dump, []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	a, err := retrieval.FitAnswerability(kb.EmbedderID(), samples)
	if err != nil {
		return err
	}
	if out == "" {
		dir := modelDir
		if d, err := findDir(dir); err == nil {
			dir = d
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		out = retrieval.AnswerabilityFile(dir, kb.EmbedderID())
	}
	b, _ := json.MarshalIndent(a, "", "  ")
	if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s: on the %s split, answers %.1f%% of answerable questions and refuses %.1f%% of the others at P ≥ %.2f\n",
		out, split, 100*a.AnswerRate, 100*a.RefusalRate, a.Threshold)
	return nil
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
	queries, err := readQueries(file, split)
	if err != nil {
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
	if cfg.Demo { // an empty database gets the demo shop's FAQ entries, which the demo's query sets judge
		if _, err := kb.SeedDemoFAQ(ctx); err != nil {
			return err
		}
	}
	if _, err := kb.EmbedMissing(ctx); err != nil {
		return err
	}
	retrieval.WarmLexical()
	var results []retrieval.EvalResult
	for _, m := range modes {
		o := cfg.search()
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
