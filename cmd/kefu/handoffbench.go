package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kefu-dev/kefu/handoff"
)

// HandoffBenchReport is what `kefu handoff bench` prints. Figures are medians over the runs.
type HandoffBenchReport struct {
	Cores    int `json:"cores"`
	Agents   int `json:"agents"`
	MaxChats int `json:"max_chats"`
	Waiting  int `json:"waiting"`
	Batch    int `json:"batch_size"`
	Runs     int `json:"runs"`
	// PreloadPerSecond is Enqueue's rate when the waiting conversations are loaded, all in
	// one transaction.
	PreloadPerSecond float64 `json:"preload_enqueues_per_second"`
	// Drain is the time to route every waiting conversation, by the number of routers.
	Drain []BenchDrain `json:"drain"`
	// Notify is from an enqueue's commit to the routing callback of a router that runs
	// Queue.Run (woken by LISTEN/NOTIFY), while agents close conversations to free slots.
	Notify BenchNotify `json:"notify"`
	// Backlog is Notify with conversations waiting for a group that nobody online can take
	// (queued before the stream, so older): they must not hold up everyone else.
	Backlog *BenchNotify `json:"backlog,omitempty"`
	// Explain is each statement of one routing pass with its execution time (auto_explain).
	Explain []BenchStatement `json:"explain,omitempty"`
}

// BenchDrain is one router count's draining of the queue.
type BenchDrain struct {
	Routers              int       `json:"routers"`
	AssignmentsPerSecond float64   `json:"assignments_per_second"` // median
	Each                 []float64 `json:"each_run"`
	Passes               int       `json:"passes"` // per run, median
	PassMs               Latency   `json:"pass_ms"`
}

// BenchNotify is the enqueue → notification latency.
type BenchNotify struct {
	Samples   int     `json:"samples"` // per run
	Rate      float64 `json:"rate"`    // enqueues (and closes) per second
	Free      int     `json:"free"`    // free slots when the stream starts
	Backlog   int     `json:"backlog"` // unroutable conversations waiting ahead
	LatencyMs Latency `json:"latency"` // each percentile's median over the runs
	// The latency in two: from the commit to the start of the routing pass that took it
	// (waiting for the router: the wake-up and any pass already running), and from there
	// to the callback (the pass itself). Medians over the runs.
	WakeMs   Latency   `json:"wake"`
	PassMs   Latency   `json:"pass"`
	Each     []Latency `json:"each_run"`
	Unrouted int       `json:"unrouted"` // samples not routed 5 s after the stream ended, over all runs
	// Explain is one routing pass as the stream sees it (with -explain).
	Explain []BenchStatement `json:"explain,omitempty"`
}

// BenchStatement is one statement of a routing pass.
type BenchStatement struct {
	Ms   float64 `json:"ms"`
	SQL  string  `json:"sql"`
	Plan string  `json:"plan"`
}

type handoffBenchConfig struct {
	agents, maxChats, waiting, batch, runs, samples, backlog int
	rate, free                                               float64
	routers                                                  []int
	explain                                                  bool
}

// handoffBenchCmd is `kefu handoff bench`: a large desk on a scratch schema, the queue drained
// by one and by several routers, and the latency of a steady stream of escalations.
func handoffBenchCmd(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("handoff bench", flag.ContinueOnError)
	var cfg Config
	cfg.bindFlags(fs)
	var bc handoffBenchConfig
	fs.IntVar(&bc.agents, "agents", 500, "agents online")
	fs.IntVar(&bc.maxChats, "max-chats", 10, "chats each agent takes at once")
	fs.IntVar(&bc.waiting, "waiting", 5000, "conversations waiting when the drain starts")
	fs.IntVar(&bc.batch, "batch", 500, "the queue's BatchSize: requests one routing pass considers")
	routers := fs.String("routers", "1,2", "router counts to drain with, one measurement each")
	fs.IntVar(&bc.runs, "runs", 3, "repetitions of each measurement (medians are reported)")
	fs.IntVar(&bc.samples, "samples", 5000, "enqueues timed per latency run")
	fs.Float64Var(&bc.rate, "rate", 250, "enqueues per second in the latency stream (Poisson), and as many closes")
	fs.Float64Var(&bc.free, "free", 0.1, "share of the slots freed before the latency stream starts")
	fs.IntVar(&bc.backlog, "backlog", 5000, "conversations waiting for a group nobody online can take, in a second latency measurement (0: skip it)")
	fs.BoolVar(&bc.explain, "explain", false, "print the plans and times of one routing pass's statements (auto_explain) to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, f := range strings.Split(*routers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 16 {
			return fmt.Errorf("-routers: %q is not a number from 1 to 16", f)
		}
		bc.routers = append(bc.routers, n)
	}
	if bc.agents < 1 || bc.maxChats < 1 || bc.waiting < 1 || bc.runs < 1 || bc.samples < 1 || !(bc.rate > 0) || bc.free < 0 || bc.free > 1 {
		return errors.New("-agents, -max-chats, -waiting, -runs, -samples and -rate must be positive, -free in [0, 1]")
	}
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	db, err := openScratch(ctx, cfg, int32(slices.Max(bc.routers)+8), quiet)
	if err != nil {
		return err
	}
	defer db.Close()
	rep, err := handoffBench(ctx, db.Pool, bc, log, quiet)
	if err != nil {
		return err
	}
	if bc.explain {
		printPlans := func(title string, plans []BenchStatement) {
			var total float64
			fmt.Fprintf(os.Stderr, "\n== %s\n", title)
			for _, p := range plans {
				total += p.Ms
				fmt.Fprintf(os.Stderr, "\n-- %.3f ms\n%s\n", p.Ms, p.Plan)
			}
			fmt.Fprintf(os.Stderr, "== statements: %.3f ms in all\n", total)
		}
		printPlans(fmt.Sprintf("one routing pass, %d waiting and every agent free", bc.waiting), rep.Explain)
		printPlans("one routing pass on a busy desk, one request waiting", rep.Notify.Explain)
		if rep.Backlog != nil {
			printPlans(fmt.Sprintf("the same with %d waiting for a group nobody online can take", bc.backlog), rep.Backlog.Explain)
		}
	}
	out := json.NewEncoder(os.Stdout)
	out.SetIndent("", "  ")
	return out.Encode(rep)
}

// benchDesk is the bench's desk and its session counter.
type benchDesk struct {
	pool    *pgxpool.Pool
	log     *slog.Logger
	next    int64 // the next session id
	waiting int
}

func handoffBench(ctx context.Context, pool *pgxpool.Pool, bc handoffBenchConfig, log, quiet *slog.Logger) (HandoffBenchReport, error) {
	rep := HandoffBenchReport{Cores: runtime.NumCPU(), Agents: bc.agents, MaxChats: bc.maxChats, Waiting: bc.waiting, Batch: bc.batch, Runs: bc.runs}
	// Offers never lapse here (nobody accepts them), and nobody goes away for want of heartbeats.
	if _, err := deskAgents(ctx, pool, bc.agents, bc.maxChats, handoff.Group{Name: "bench", AcceptSeconds: 86400}); err != nil {
		return rep, err
	}
	d := &benchDesk{pool: pool, log: quiet, next: simSessionBase}
	want := min(bc.waiting, bc.agents*bc.maxChats)

	var preload []float64
	if bc.explain {
		if err := d.reset(ctx, bc.waiting, "bench", &preload); err != nil {
			return rep, err
		}
		plans, err := explainRoute(ctx, pool, bc.batch, quiet)
		if err != nil {
			return rep, err
		}
		rep.Explain = plans
	}
	for _, routers := range bc.routers {
		r := BenchDrain{Routers: routers}
		var passes []float64
		var allMs []float64
		for run := range bc.runs {
			if err := d.reset(ctx, bc.waiting, "bench", &preload); err != nil {
				return rep, err
			}
			secs, ms, err := d.drain(ctx, routers, bc.batch, want)
			if err != nil {
				return rep, err
			}
			r.Each = append(r.Each, round4(float64(want)/secs))
			passes = append(passes, float64(len(ms)))
			allMs = append(allMs, ms...)
			log.Info("handoff bench: drained", "routers", routers, "run", run+1, "assignments", want, "seconds", round4(secs),
				"per_s", int(float64(want)/secs), "passes", len(ms))
		}
		r.AssignmentsPerSecond, r.Passes, r.PassMs = median(r.Each), int(median(passes)), latencyOf(allMs)
		rep.Drain = append(rep.Drain, r)
	}
	rep.PreloadPerSecond = round4(median(preload))

	var err error
	if rep.Notify, err = d.notifyRuns(ctx, bc, 0, &preload, log); err != nil {
		return rep, err
	}
	if bc.backlog > 0 {
		b, err := d.notifyRuns(ctx, bc, bc.backlog, &preload, log)
		if err != nil {
			return rep, err
		}
		rep.Backlog = &b
	}
	return rep, nil
}

// medianLatency is each percentile's median over runs.
func medianLatency(runs []Latency) Latency {
	var p50, p90, p99, mx []float64
	for _, l := range runs {
		p50, p90, p99, mx = append(p50, l.P50), append(p90, l.P90), append(p99, l.P99), append(mx, l.Max)
	}
	return Latency{P50: median(p50), P90: median(p90), P99: median(p99), Max: median(mx)}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// reset empties the queue and the agents' loads, then enqueues n conversations for group, in
// one transaction through Queue.Enqueue, and gives the planner fresh statistics (as
// autovacuum would on a served desk).
func (d *benchDesk) reset(ctx context.Context, n int, group string, rates *[]float64) error {
	if _, err := d.pool.Exec(ctx, `DELETE FROM handoff_request`); err != nil {
		return err
	}
	if _, err := d.pool.Exec(ctx, `UPDATE handoff_agent SET active_chats = 0, last_assigned_at = NULL`); err != nil {
		return err
	}
	if err := d.enqueueMany(ctx, n, group, rates); err != nil {
		return err
	}
	_, err := d.pool.Exec(ctx, `VACUUM ANALYZE handoff_request, handoff_agent`)
	return err
}

func (d *benchDesk) enqueueMany(ctx context.Context, n int, group string, rates *[]float64) error {
	q := handoff.NewQueue(d.pool, d.log)
	start := time.Now()
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		for range n {
			d.next++
			if _, err := q.Enqueue(ctx, tx, handoff.Request{SessionID: d.next, Language: "zh", Reason: "customer_asked", Group: group}); err != nil {
				return err
			}
		}
		return nil
	})
	if rates != nil && err == nil {
		*rates = append(*rates, float64(n)/time.Since(start).Seconds())
	}
	return err
}

// drain routes until want conversations are assigned, with routers routers at once (each a
// Queue of its own, as separate instances would be), and returns the time and each pass's.
func (d *benchDesk) drain(ctx context.Context, routers, batch, want int) (float64, []float64, error) {
	var assigned atomic.Int64
	var mu sync.Mutex
	var passMs []float64
	var firstErr error
	deadline := time.Now().Add(2 * time.Minute)
	start := time.Now()
	var wg sync.WaitGroup
	for range routers {
		q := handoff.NewQueue(d.pool, d.log)
		q.BatchSize = batch
		wg.Go(func() {
			for assigned.Load() < int64(want) && ctx.Err() == nil {
				t0 := time.Now()
				as, err := q.Route(ctx)
				ms := float64(time.Since(t0).Microseconds()) / 1000
				if err == nil && len(as) == 0 && routers == 1 {
					err = fmt.Errorf("a routing pass assigned nothing with %d of %d conversations assigned", assigned.Load(), want)
				}
				if err == nil && time.Now().After(deadline) {
					err = fmt.Errorf("the drain took over two minutes")
				}
				if err != nil {
					mu.Lock()
					firstErr = cmpOr(firstErr, err)
					mu.Unlock()
					return
				}
				if len(as) == 0 {
					time.Sleep(100 * time.Microsecond) // another router holds the agents
					continue
				}
				assigned.Add(int64(len(as)))
				mu.Lock()
				passMs = append(passMs, ms)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return time.Since(start).Seconds(), passMs, firstErr
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// notifyRuns measures the notification latency bc.runs times; with backlog, that many
// conversations wait for a group nobody online can take, ahead of the stream.
func (d *benchDesk) notifyRuns(ctx context.Context, bc handoffBenchConfig, backlog int, preload *[]float64, log *slog.Logger) (BenchNotify, error) {
	n := BenchNotify{Samples: bc.samples, Rate: bc.rate, Backlog: backlog}
	if backlog > 0 {
		// A group whose only member is away: its requests wait for ever.
		var away int64
		err := d.pool.QueryRow(ctx, `
INSERT INTO handoff_agent (email, name, password_hash, max_chats, status, roles)
VALUES ('away@kefu.local', 'Away', 'none', 10, 'away', '{agent}')
ON CONFLICT (email) DO UPDATE SET status = 'away' RETURNING id`).Scan(&away)
		if err != nil {
			return n, err
		}
		if _, err := handoff.NewDesk(d.pool).SaveGroup(ctx, handoff.Group{Name: "backlog", Tier: 2, AcceptSeconds: 86400, Members: []int64{away}}); err != nil {
			return n, err
		}
	}
	var wakes, passes []Latency
	for run := range bc.runs {
		if err := d.reset(ctx, bc.waiting, "bench", preload); err != nil {
			return n, err
		}
		// Fill the desk, then free a share of the slots: the stream starts on a busy desk.
		if _, _, err := d.drain(ctx, 1, bc.batch, min(bc.waiting, bc.agents*bc.maxChats)); err != nil {
			return n, err
		}
		if backlog > 0 {
			if err := d.enqueueMany(ctx, backlog, "backlog", nil); err != nil {
				return n, err
			}
			if _, err := d.pool.Exec(ctx, `ANALYZE handoff_request`); err != nil {
				return n, err
			}
		}
		if err := d.freeSlots(ctx, bc); err != nil {
			return n, err
		}
		if bc.explain && run == 0 {
			// A pass as the stream sees it: a busy desk with some room, and one request (plus
			// the backlog) waiting.
			if err := d.enqueueMany(ctx, 1, "bench", nil); err != nil {
				return n, err
			}
			plans, err := explainRoute(ctx, d.pool, bc.batch, d.log)
			if err != nil {
				return n, err
			}
			n.Explain = plans
		}
		lat, wake, pass, unrouted, free, err := d.stream(ctx, bc, log)
		if err != nil {
			return n, err
		}
		wakes, passes = append(wakes, latencyOf(wake)), append(passes, latencyOf(pass))
		n.Free = free
		n.Unrouted += unrouted
		l := latencyOf(lat)
		n.Each = append(n.Each, l)
		log.Info("handoff bench: notification latency", "backlog", backlog, "run", run+1, "samples", len(lat), "unrouted", unrouted,
			"p50_ms", l.P50, "p99_ms", l.P99, "max_ms", l.Max)
	}
	n.LatencyMs = medianLatency(n.Each)
	n.WakeMs, n.PassMs = medianLatency(wakes), medianLatency(passes)
	return n, nil
}

// freeSlots closes conversations at random until bc.free of the slots are free.
func (d *benchDesk) freeSlots(ctx context.Context, bc handoffBenchConfig) error {
	var free int
	if err := d.pool.QueryRow(ctx, `SELECT sum(max_chats - active_chats) FROM handoff_agent WHERE status = 'online'`).Scan(&free); err != nil {
		return err
	}
	q := handoff.NewQueue(d.pool, d.log)
	return pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
SELECT session_id FROM handoff_request WHERE state = 'assigned' ORDER BY random() LIMIT $1`,
			max(0, int(math.Round(bc.free*float64(bc.agents*bc.maxChats)))-free))
		if err != nil {
			return err
		}
		sessions, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		for _, s := range sessions {
			if _, err := q.Close(ctx, tx, s, "resolved"); err != nil {
				return err
			}
		}
		return nil
	})
}

// stream starts a router (Queue.Run, woken by LISTEN) and enqueues bc.samples conversations
// at bc.rate a second (Poisson), each in a transaction of its own, while agents close as many
// at random: it returns each enqueue's commit → notification time.
func (d *benchDesk) stream(ctx context.Context, bc handoffBenchConfig, log *slog.Logger) (lat, wake, pass []float64, unrouted, slots int, err error) {
	var mu sync.Mutex
	var open []int64 // assigned sessions, for agents to close
	rows, err := d.pool.Query(ctx, `SELECT session_id FROM handoff_request WHERE state = 'assigned'`)
	if err != nil {
		return nil, nil, nil, 0, 0, err
	}
	if open, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
		return nil, nil, nil, 0, 0, err
	}
	rng := rand.New(rand.NewPCG(uint64(d.next), 7))
	q := handoff.NewQueue(d.pool, d.log)
	q.HeartbeatTimeout, q.BatchSize = 0, bc.batch
	closeOne := func() error {
		mu.Lock()
		if len(open) == 0 {
			mu.Unlock()
			return nil
		}
		i := rng.IntN(len(open))
		s := open[i]
		open[i] = open[len(open)-1]
		open = open[:len(open)-1]
		mu.Unlock()
		return pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
			_, err := q.Close(ctx, tx, s, "resolved")
			return err
		})
	}
	if err := d.pool.QueryRow(ctx, `SELECT sum(max_chats - active_chats) FROM handoff_agent WHERE status = 'online'`).Scan(&slots); err != nil {
		return nil, nil, nil, 0, 0, err
	}

	first := d.next + 1
	committed := make([]time.Time, bc.samples)
	notified := make([]time.Time, bc.samples)
	passStart := make([]time.Time, bc.samples)
	q.SetOwner(nil, func(_ context.Context, as []handoff.Assignment) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		for _, a := range as {
			if i := a.SessionID - first; i >= 0 && i < int64(len(notified)) {
				notified[i], passStart[i] = now, a.Assigned
			}
			open = append(open, a.SessionID)
		}
	})
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var router sync.WaitGroup
	router.Go(func() { q.Run(runCtx, time.Second) })
	time.Sleep(300 * time.Millisecond) // the router's LISTEN connection

	gap := float64(time.Second) / bc.rate
	var wg sync.WaitGroup
	var closeErr error
	crng := rand.New(rand.NewPCG(uint64(d.next), 9))
	wg.Go(func() { // agents closing, at the same rate
		next := time.Now()
		for range bc.samples {
			next = next.Add(time.Duration(crng.ExpFloat64() * gap))
			time.Sleep(time.Until(next))
			if err := closeOne(); err != nil {
				closeErr = err
				return
			}
		}
	})
	start := time.Now()
	next := start
	erng := rand.New(rand.NewPCG(uint64(d.next), 11))
	for i := range bc.samples {
		next = next.Add(time.Duration(erng.ExpFloat64() * gap))
		time.Sleep(time.Until(next))
		d.next++
		session := d.next
		tx, err := d.pool.Begin(ctx)
		if err != nil {
			return nil, nil, nil, 0, 0, err
		}
		if _, err := q.Enqueue(ctx, tx, handoff.Request{SessionID: session, Language: "zh", Reason: "customer_asked", Group: "bench"}); err != nil {
			tx.Rollback(ctx) //nolint:errcheck // the error is the Enqueue's
			return nil, nil, nil, 0, 0, err
		}
		if err := tx.Commit(ctx); err != nil {
			return nil, nil, nil, 0, 0, err
		}
		t := time.Now()
		mu.Lock()
		committed[i] = t
		mu.Unlock()
	}
	wg.Wait()
	if closeErr != nil {
		return nil, nil, nil, 0, 0, closeErr
	}
	// Stragglers get five seconds.
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		all := !slices.ContainsFunc(notified, time.Time.IsZero)
		mu.Unlock()
		if all {
			break
		}
	}
	stop()
	router.Wait()
	mu.Lock()
	defer mu.Unlock()
	ms := func(d time.Duration) float64 { return max(0, float64(d.Microseconds())/1000) }
	for i := range committed {
		if notified[i].IsZero() {
			unrouted++
			continue
		}
		lat = append(lat, ms(notified[i].Sub(committed[i])))
		wake = append(wake, ms(passStart[i].Sub(committed[i])))
		pass = append(pass, ms(notified[i].Sub(passStart[i])))
	}
	log.Debug("handoff bench: stream done", "seconds", time.Since(start).Seconds(), "free_at_start", slots)
	return lat, wake, pass, unrouted, slots, nil
}

var autoExplainDuration = regexp.MustCompile(`duration: ([0-9.]+) ms`)

// explainRoute runs one routing pass on a connection with auto_explain loaded (it needs a
// superuser), and returns each statement's plan, with actual times, as PostgreSQL sends it.
func explainRoute(ctx context.Context, pool *pgxpool.Pool, batch int, log *slog.Logger) ([]BenchStatement, error) {
	pc := pool.Config().Copy()
	pc.MaxConns, pc.MinConns = 1, 0
	var mu sync.Mutex
	var out []BenchStatement
	pc.ConnConfig.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		m := autoExplainDuration.FindStringSubmatch(n.Message)
		if m == nil {
			return
		}
		ms, _ := strconv.ParseFloat(m[1], 64)
		sql := n.Message
		if _, after, ok := strings.Cut(sql, "Query Text:"); ok {
			sql, _, _ = strings.Cut(strings.TrimSpace(after), "\n")
		}
		mu.Lock()
		out = append(out, BenchStatement{Ms: ms, SQL: sql, Plan: n.Message})
		mu.Unlock()
	}
	after := pc.AfterConnect
	pc.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		if after != nil {
			if err := after(ctx, c); err != nil {
				return err
			}
		}
		_, err := c.Exec(ctx, `LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; SET auto_explain.log_analyze = on;
SET auto_explain.log_buffers = on; SET auto_explain.log_timing = on; SET auto_explain.log_level = 'notice'`)
		if err != nil {
			return fmt.Errorf("auto_explain (needs a superuser): %w", err)
		}
		return nil
	}
	p, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	q := handoff.NewQueue(p, log)
	q.BatchSize = batch
	t0 := time.Now()
	as, err := q.Route(ctx)
	if err != nil {
		return nil, err
	}
	log.Info("handoff bench: explained routing pass", "assigned", len(as), "ms", time.Since(t0).Milliseconds())
	mu.Lock()
	defer mu.Unlock()
	return out, nil
}
