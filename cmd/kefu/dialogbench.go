package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kefu-dev/kefu/dialog"
)

// benchScript is what a benchmark customer says, in a loop: tasks with slots, knowledge
// questions and small talk in both languages, the mix a shop's chat sees.
var benchScript = []string{
	"你好", "我要退款", "SO20261127001", "质量问题", "确认",
	"运费多少钱？", "how long does shipping take?", "where is my order SO20261127002?",
	"I want to change my delivery address", "order SO20261127002", "12 Baker Street, London", "no",
	"可以开发票吗？", "thanks", "我的订单到哪了", "订单 SO20261120003", "谢谢",
}

// dialogCmd is `kefu dialog bench|verify`.
func dialogCmd(ctx context.Context, args []string, log *slog.Logger) error {
	if len(args) == 0 {
		return errors.New("usage: kefu dialog bench [flags] | kefu dialog verify -schema NAME -ack-log FILE")
	}
	switch args[0] {
	case "bench":
		return dialogBench(ctx, args[1:], log)
	case "verify":
		return dialogVerify(ctx, args[1:], log)
	}
	return fmt.Errorf("unknown dialog command %q (want bench or verify)", args[0])
}

// dialogBench drives the engine (real PostgreSQL, real model, LLM off) with N concurrent
// customer sessions for each N in -sessions, and prints turns per second and turn latency.
// Level 1 runs back to back; larger levels give each customer a think time between messages
// (exponential, mean -think), as real customers have.
func dialogBench(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("dialog bench", flag.ContinueOnError)
	var cfg Config
	cfg.bindFlags(fs)
	levels := fs.String("sessions", "1,100,1000", "concurrent sessions, one run each")
	dur := fs.Duration("duration", 20*time.Second, "measured time per level (after a warm-up of a tenth of it)")
	think := fs.Duration("think", 5*time.Second, "mean pause of a customer between messages at levels above 1 (0: back to back)")
	conns := fs.Int("max-conns", 16, "database connections")
	ackLog := fs.String("ack-log", "", "append 'sent' and 'acked' lines per turn to this file (for the kill test)")
	keep := fs.Bool("keep", false, "keep the scratch schema (its name is printed) for kefu dialog verify")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	memProfile := fs.String("memprofile", "", "write an allocation profile of the run to this file")
	traceFile := fs.String("trace", "", "write an execution trace of the run to this file")
	repeat := fs.Int("repeat", 1, "runs of each level; with more than one, a median line follows")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *traceFile != "" {
		f, err := os.Create(*traceFile)
		if err != nil {
			return err
		}
		defer f.Close()
		trace.Start(f) //nolint:errcheck
		defer trace.Stop()
	}
	if *memProfile != "" {
		defer func() {
			if f, err := os.Create(*memProfile); err == nil {
				pprof.Lookup("allocs").WriteTo(f, 0) //nolint:errcheck // a diagnostic
				f.Close()
			}
		}()
	}
	var ns []int
	for _, f := range strings.Split(*levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("-sessions: %q is not a positive number", f)
		}
		ns = append(ns, n)
	}
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	b, err := openTestBot(ctx, cfg, cfg.FlowsDir, int32(*conns), nil, quiet)
	if err != nil {
		return err
	}
	if *keep {
		b.db.keep = true
	}
	defer b.Close()
	fmt.Printf("schema %s\n", b.db.name)
	var acks *ackWriter
	if *ackLog != "" {
		f, err := os.OpenFile(*ackLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		acks = &ackWriter{f: f}
	}
	fmt.Printf("%-9s %10s %10s %9s %9s %9s %8s\n", "sessions", "turns", "turns/s", "p50 ms", "p99 ms", "max ms", "errors")
	for _, n := range ns {
		pause := *think
		if n == 1 {
			pause = 0
		}
		var runs []benchResult
		for range max(*repeat, 1) {
			r, err := benchLevel(ctx, b.Engine, n, *dur, pause, acks)
			if err != nil {
				return err
			}
			fmt.Printf("%-9d %10d %10.1f %9.2f %9.2f %9.2f %8d\n", n, r.turns, r.rate, r.p50, r.p99, r.max, r.errors)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			runs = append(runs, r)
		}
		if len(runs) > 1 {
			med := func(f func(benchResult) float64) float64 {
				v := make([]float64, len(runs))
				for i, r := range runs {
					v[i] = f(r)
				}
				slices.Sort(v)
				return v[len(v)/2]
			}
			fmt.Printf("%-9s %10s %10.1f %9.2f %9.2f %9.2f %8s   (median of %d runs)\n", strconv.Itoa(n)+" med", "",
				med(func(r benchResult) float64 { return r.rate }), med(func(r benchResult) float64 { return r.p50 }),
				med(func(r benchResult) float64 { return r.p99 }), med(func(r benchResult) float64 { return r.max }), "", len(runs))
		}
	}
	return nil
}

type benchResult struct {
	turns, errors int
	rate          float64
	p50, p99, max float64
}

// ackWriter records each turn before it is sent and once it is acknowledged, one write(2)
// per line, so the lines survive the process being killed.
type ackWriter struct {
	mu sync.Mutex
	f  *os.File
}

func (a *ackWriter) line(kind string, session int64, clientID string) {
	if a == nil {
		return
	}
	a.mu.Lock()
	fmt.Fprintf(a.f, "%s %d %s\n", kind, session, clientID)
	a.mu.Unlock()
}

func benchLevel(ctx context.Context, eng *dialog.Engine, n int, dur, think time.Duration, acks *ackWriter) (benchResult, error) {
	ids := make([]int64, n)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			s, _, err := eng.CreateSession(ctx, "bench", "")
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			ids[i] = s.ID
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return benchResult{}, err
	}
	warm := dur / 10
	start := time.Now()
	measureFrom, stop := start.Add(warm), start.Add(warm+dur)
	var mu sync.Mutex
	var lat []float64
	var errs int
	for i, id := range ids {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(id), uint64(i)))
			if think > 0 { // spread the first messages over one think time
				sleepCtx(ctx, time.Duration(rng.Int64N(int64(think))))
			}
			for k := 0; ctx.Err() == nil && time.Now().Before(stop); k++ {
				cid := fmt.Sprintf("b%d-%d", id, k)
				acks.line("sent", id, cid)
				t0 := time.Now()
				_, err := eng.Turn(ctx, dialog.Inbound{SessionID: id, ClientID: cid, Text: benchScript[(i+k)%len(benchScript)]})
				ms := float64(time.Since(t0).Microseconds()) / 1000
				if err == nil {
					acks.line("acked", id, cid)
				}
				if t0.After(measureFrom) {
					mu.Lock()
					if err != nil {
						if errs == 0 {
							fmt.Fprintf(os.Stderr, "first turn error: %v\n", err)
						}
						errs++
					} else {
						lat = append(lat, ms)
					}
					mu.Unlock()
				}
				if think > 0 {
					sleepCtx(ctx, time.Duration(rng.ExpFloat64()*float64(think)))
				}
			}
		})
	}
	wg.Wait()
	slices.Sort(lat)
	r := benchResult{turns: len(lat), errors: errs, rate: float64(len(lat)) / dur.Seconds()}
	if len(lat) > 0 {
		r.p50, r.p99, r.max = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)], lat[len(lat)-1]
	}
	return r, nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// dialogVerify checks a bench run's ack log against what the database holds, after the
// bench was killed: every acknowledged turn is stored exactly once, with the bot's reply in
// the same transaction; a turn sent but not acknowledged is stored at most once; resending
// those (same client ids) stores each exactly once. It drops the schema when all is well.
func dialogVerify(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("dialog verify", flag.ContinueOnError)
	var cfg Config
	cfg.bindFlags(fs)
	schema := fs.String("schema", "", "the scratch schema the bench printed")
	ackLog := fs.String("ack-log", "", "the bench's ack log")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *schema == "" || *ackLog == "" {
		return errors.New("usage: kefu dialog verify -schema NAME -ack-log FILE")
	}
	f, err := os.Open(*ackLog)
	if err != nil {
		return err
	}
	type key struct {
		session int64
		client  string
	}
	sent, acked := map[key]bool{}, map[key]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kind string
		var k key
		if n, _ := fmt.Sscanf(sc.Text(), "%s %d %s", &kind, &k.session, &k.client); n != 3 {
			continue // the last line may be cut by the kill
		}
		if kind == "acked" {
			acked[k] = true
		} else {
			sent[k] = true
		}
	}
	f.Close()
	if !scratchName.MatchString(*schema) {
		return fmt.Errorf("-schema %q: want the kefu_scratch_… schema the bench printed", *schema)
	}
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	cfg.scratchSchema = *schema
	b, err := openTestBot(ctx, cfg, cfg.FlowsDir, 8, nil, quiet)
	if err != nil {
		return err
	}
	defer b.Close()
	b.db.keep = true
	pool := b.db.Pool
	count := func(k key) (int, error) {
		var n int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM dialog_message WHERE session_id = $1 AND role = 'customer' AND client_id = $2`,
			k.session, k.client).Scan(&n)
		return n, err
	}
	var problems []string
	var lost, twice, inFlightStored int
	for k := range sent {
		n, err := count(k)
		if err != nil {
			return err
		}
		switch {
		case n > 1:
			twice++
		case acked[k] && n == 0:
			lost++
		case !acked[k] && n == 1:
			inFlightStored++
		}
	}
	// Every customer message has the bot's reply (or a silent state) right after it: a turn
	// commits whole or not at all.
	var orphans int
	err = pool.QueryRow(ctx, `
SELECT count(*) FROM dialog_message c JOIN dialog_session s ON s.id = c.session_id
WHERE c.role = 'customer' AND s.state = 'bot'
  AND NOT EXISTS (SELECT 1 FROM dialog_message r WHERE r.session_id = c.session_id AND r.seq = c.seq + 1 AND r.role = 'bot')`).Scan(&orphans)
	if err != nil {
		return err
	}
	var gaps int
	err = pool.QueryRow(ctx, `
SELECT count(*) FROM (SELECT session_id, count(*) AS n, max(seq) AS top FROM dialog_message GROUP BY session_id) x
WHERE n <> top`).Scan(&gaps)
	if err != nil {
		return err
	}
	// Resend what was in flight, as a reconnecting client does.
	var resent, dup int
	for k := range sent {
		if acked[k] {
			continue
		}
		res, err := b.Engine.Turn(ctx, dialog.Inbound{SessionID: k.session, ClientID: k.client, Text: "resend"})
		if err != nil {
			return fmt.Errorf("resend %v: %w", k, err)
		}
		resent++
		if res.Duplicate {
			dup++
		}
		if n, err := count(k); err != nil || n != 1 {
			problems = append(problems, fmt.Sprintf("after resending %v it is stored %d times", k, n))
		}
	}
	fmt.Printf("sent %d, acknowledged %d, in flight at the kill %d (stored before the kill %d)\n",
		len(sent), len(acked), len(sent)-len(acked), inFlightStored)
	fmt.Printf("acknowledged but lost %d, stored twice %d, turns without their reply %d, sessions with seq gaps %d\n",
		lost, twice, orphans, gaps)
	fmt.Printf("resent %d: %d were already stored (duplicates), %d stored now\n", resent, dup, resent-dup)
	if lost+twice+orphans+gaps > 0 || len(problems) > 0 {
		for _, p := range problems {
			fmt.Println(p)
		}
		return errors.New("verify failed: turns lost or applied twice")
	}
	fmt.Println("ok: no turn lost, none applied twice")
	b.db.keep = false
	return nil
}
