package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/kefu-dev/kefu/dialog"
	"github.com/kefu-dev/kefu/dialog/demoshop"
	"github.com/kefu-dev/kefu/handoff"
	"github.com/kefu-dev/kefu/nlu"
	"github.com/kefu-dev/kefu/retrieval"
)

// testBot is the demo bot on a scratch schema, for conversation tests and benchmarks: the
// real model, the demo knowledge base, the flows and the demo order service on a local port.
type testBot struct {
	Engine *dialog.Engine
	Clock  *dialog.Clock
	db     *scratch
	model  *nlu.Classifier
	embed  retrieval.Embedder // the knowledge base's: newEmbedder's choice
	shop   *http.Server
}

func openTestBot(ctx context.Context, cfg Config, flowsDir string, maxConns int32, clock *dialog.Clock, log *slog.Logger) (*testBot, error) {
	b := &testBot{Clock: clock}
	var err error
	if b.model, err = loadModel(cfg.ORTLib, cfg.ModelDir); err != nil {
		return nil, err
	}
	nlu.DetectLanguage("warm up the language models") // seconds on first use: not inside a measurement
	dir, err := findDir(flowsDir)
	if err != nil {
		b.Close()
		return nil, err
	}
	flows, err := dialog.LoadFlows(dir, b.model.Labels())
	if err != nil {
		b.Close()
		return nil, err
	}
	if b.db, err = openScratch(ctx, cfg, maxConns, log); err != nil {
		b.Close()
		return nil, err
	}
	if b.embed, err = newEmbedder(ctx, cfg, b.model); err != nil {
		b.Close()
		return nil, err
	}
	kb := retrieval.NewStore(b.db.Pool, b.embed, cfg.KBThreshold, log)
	if err := applyAnswerability(cfg, kb, log); err != nil {
		b.Close()
		return nil, err
	}
	if _, err := kb.SeedDemo(ctx); err != nil {
		b.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Close()
		return nil, err
	}
	secret := []byte("kefu-test-" + time.Now().String())
	b.shop = &http.Server{Handler: demoshop.New(secret, log).Handler(), ReadHeaderTimeout: 5 * time.Second}
	go b.shop.Serve(ln) //nolint:errcheck // ends with Close
	ecfg := dialog.Config{EscalateAfter: cfg.EscalateAfter, ClarifyMargin: cfg.ClarifyMargin, Flows: flows,
		Webhooks: &dialog.WebhookClient{Secret: secret, Log: log},
		Vars:     map[string]string{"KEFU_URL": "http://" + ln.Addr().String()}}
	if clock != nil {
		ecfg.Now = clock.Now
	}
	b.Engine = dialog.NewEngine(b.db.Pool, b.model, kb, handoff.NewQueue(b.db.Pool, log), ecfg, log)
	return b, nil
}

func (b *testBot) Close() {
	if b.shop != nil {
		b.shop.Close()
	}
	if b.db != nil {
		b.db.Close()
	}
	if b.embed != nil {
		closeEmbedder(b.embed, b.model)
	}
	if b.model != nil {
		b.model.Close()
	}
}

// testCmd is `kefu test conversations [DIR]`: play every conversation test and print PASS or
// FAIL for each, with what differed.
func testCmd(ctx context.Context, args []string, log *slog.Logger) error {
	if len(args) == 0 || args[0] != "conversations" {
		return errors.New("usage: kefu test conversations [-flows dialog/flows] [-run NAME] [DIR]")
	}
	fs := flag.NewFlagSet("test conversations", flag.ContinueOnError)
	var cfg Config
	cfg.bindFlags(fs)
	only := fs.String("run", "", "run only the tests whose name contains this")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	dir := fs.Arg(0)
	if dir == "" {
		dir = "dialog/conversations"
	}
	if d, err := findDir(dir); err == nil {
		dir = d
	}
	convs, err := dialog.LoadConversations(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return errors.New("the conversation tests do not load")
	}
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	clock := dialog.NewClock(time.Now())
	b, err := openTestBot(ctx, cfg, cfg.FlowsDir, 0, clock, quiet)
	if err != nil {
		return err
	}
	defer b.Close()
	start := time.Now()
	var passed, failed int
	for _, c := range convs {
		if *only != "" && !containsFold(c.Name, *only) {
			continue
		}
		r := b.Engine.RunConversation(ctx, c, clock)
		if r.Passed() {
			passed++
			fmt.Printf("PASS  %s  (%s:%d)\n", c.Name, c.File, c.Line)
			continue
		}
		failed++
		fmt.Printf("FAIL  %s  (%s:%d)\n", c.Name, c.File, c.Line)
		if r.Err != nil {
			fmt.Printf("      error: %v\n", r.Err)
		}
		for _, f := range r.Failures {
			fmt.Printf("      %s\n", f)
		}
	}
	fmt.Printf("%d passed, %d failed in %.1fs\n", passed, failed, time.Since(start).Seconds())
	if failed > 0 {
		return fmt.Errorf("%d conversation test(s) failed", failed)
	}
	return nil
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
