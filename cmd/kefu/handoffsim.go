package main

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kefu-dev/kefu/handoff"
)

// handoffCmd is `kefu handoff sim|bench`: the routing queue against queueing theory, and its
// speed at a large desk (handoffbench.go).
func handoffCmd(ctx context.Context, args []string, log *slog.Logger) error {
	if len(args) == 0 {
		return errors.New("usage: kefu handoff sim [flags] | kefu handoff bench [flags]")
	}
	switch args[0] {
	case "sim":
		return handoffSimCmd(ctx, args[1:], log)
	case "bench":
		return handoffBenchCmd(ctx, args[1:], log)
	}
	return fmt.Errorf("unknown handoff command %q (want sim or bench)", args[0])
}

// SimConfig is a simulated desk: who arrives, how long they take, how long they wait.
type SimConfig struct {
	Agents        int           `json:"agents"`
	MaxChats      int           `json:"max_chats"`         // per agent; 1 makes each agent one Erlang server
	ArrivalRate   float64       `json:"arrivals_per_min"`  // Poisson
	Handle        time.Duration `json:"handle_time"`       // mean
	HandleDist    string        `json:"handle_dist"`       // exponential, lognormal or fixed
	HandleCV      float64       `json:"handle_cv"`         // lognormal's coefficient of variation
	Patience      time.Duration `json:"patience"`          // mean, exponential; 0: nobody gives up
	Conversations int           `json:"conversations"`     //
	Warmup        int           `json:"warmup"`            // first conversations left out of the figures
	SLA           time.Duration `json:"sla"`               // target wait
	Seed          uint64        `json:"seed"`              //
	Strategy      string        `json:"strategy"`          // the skill group's
	CheckEvery    int           `json:"check_every"`       // events between checks against the database
	Concurrent    int           `json:"concurrent"`        // routers in real time; 0: virtual time
	TimeScale     float64       `json:"time_scale"`        // real time: simulated seconds per second
	Workers       int           `json:"workers,omitempty"` // real time: customers' and agents' connections
	Spread        int           `json:"spread"`            // seeds the ideal queue runs with to show the sampling spread
}

// MarshalJSON writes the durations as Go durations ("5m0s"), not nanoseconds.
func (sc SimConfig) MarshalJSON() ([]byte, error) {
	type plain SimConfig // without this method
	return json.Marshal(struct {
		plain
		Handle   string `json:"handle_time"`
		Patience string `json:"patience"`
		SLA      string `json:"sla"`
	}{plain(sc), sc.Handle.String(), sc.Patience.String(), sc.SLA.String()})
}

// SimReport is what `kefu handoff sim` prints.
type SimReport struct {
	Mode       string          `json:"mode"` // virtual or concurrent
	Config     SimConfig       `json:"config"`
	Servers    int             `json:"servers"`                // agents × max chats
	Measured   int             `json:"measured_conversations"` // after the warm-up
	Seconds    float64         `json:"seconds"`                // wall time of the run
	Simulated  *SimFigures     `json:"simulated,omitempty"`
	Theory     *SimTheory      `json:"theory,omitempty"`
	Reference  *SimReference   `json:"reference,omitempty"`
	Report     *SimQueueReport `json:"queue_report,omitempty"`
	Queue      SimThroughput   `json:"queue"`
	Concurrent *SimConcurrent  `json:"concurrent,omitempty"`
	Invariants SimInvariants   `json:"invariants"`
}

// SimFigures are what the customers and agents of a run went through, after the warm-up.
// Waits are in simulated seconds.
type SimFigures struct {
	// MeanWait is the mean time in the queue of every customer (0 for those served at once;
	// until they gave up for those who did), with the half-width of its 95% confidence
	// interval from 20 batch means (consecutive customers' waits are correlated).
	MeanWait       float64 `json:"mean_wait"`
	MeanWaitCI95   float64 `json:"mean_wait_ci95"`
	MeanWaitServed float64 `json:"mean_wait_served"`
	P50            float64 `json:"wait_p50"` // of customers served
	P90            float64 `json:"wait_p90"`
	P99            float64 `json:"wait_p99"`
	Max            float64 `json:"wait_max"`
	PWait          float64 `json:"p_wait"`      // share who waited at all
	SLAMet         float64 `json:"sla_met"`     // share served within the SLA, of all customers
	Abandoned      float64 `json:"abandoned"`   // share who gave up
	Utilisation    float64 `json:"utilisation"` // busy share of the agents' chat slots
}

// SimTheory is what queueing theory predicts for the same desk: Erlang C when customers wait
// for ever, Erlang A when they give up.
type SimTheory struct {
	Model          string  `json:"model"`
	MeanWait       float64 `json:"mean_wait"`
	PWait          float64 `json:"p_wait"`
	SLAMet         float64 `json:"sla_met,omitempty"`
	P50            float64 `json:"wait_p50,omitempty"`
	P90            float64 `json:"wait_p90,omitempty"`
	P99            float64 `json:"wait_p99,omitempty"`
	Abandoned      float64 `json:"abandoned,omitempty"`
	Utilisation    float64 `json:"utilisation"`
	MeanWaitRelErr float64 `json:"mean_wait_rel_err"` // (simulated − predicted) / predicted
	// For handling times that are not exponential, Erlang C is only an approximation;
	// Allen–Cunneen scales its mean wait by (1 + cv²)/2.
	AdjustedMeanWait float64 `json:"adjusted_mean_wait,omitempty"`
	AdjustedRelErr   float64 `json:"adjusted_rel_err,omitempty"`
	Note             string  `json:"note,omitempty"`
}

// SimReference compares the real queue with an ideal one (a FIFO list and a count of free
// slots, in memory) fed the same customers: a correct queue gives every customer the same wait
// to the microsecond, so any difference is the queue's, not chance's.
type SimReference struct {
	Identical int     `json:"identical"`
	Differ    int     `json:"differ"`
	MeanWait  float64 `json:"mean_wait"`
	FirstDiff string  `json:"first_difference,omitempty"`
	// The ideal queue with Seeds other seeds and the same number of customers: how far one
	// run's mean wait strays by chance. Within10 is the share of seeds whose mean wait is
	// within 10% of the prediction; Z is this run's mean wait, in their standard deviations
	// from the prediction.
	Seeds     int     `json:"seeds,omitempty"`
	SeedsMean float64 `json:"seeds_mean_wait,omitempty"`
	SeedsSD   float64 `json:"seeds_sd,omitempty"`
	SeedsMin  float64 `json:"seeds_min,omitempty"`
	SeedsMax  float64 `json:"seeds_max,omitempty"`
	Within10  float64 `json:"seeds_within_10pct,omitempty"`
	Z         float64 `json:"z,omitempty"`
}

// SimQueueReport is the queue's own metrics (handoff.Queue.Report) over the measured
// conversations: they should agree with what the simulation saw.
type SimQueueReport struct {
	AvgWait     float64 `json:"avg_wait"`
	P90Wait     float64 `json:"p90_wait"`
	SLAMet      float64 `json:"sla_met"`
	AbandonRate float64 `json:"abandon_rate"`
	Closed      int     `json:"closed"`
}

// SimThroughput is the work the real queue did and how fast.
type SimThroughput struct {
	Enqueues     int     `json:"enqueues"`
	Closes       int     `json:"closes"`
	Abandons     int     `json:"abandons"`
	Routes       int     `json:"routes"`       // routing passes
	EmptyRoutes  int     `json:"empty_routes"` // passes that assigned nothing
	Transactions int     `json:"transactions"`
	OpsPerSecond float64 `json:"ops_per_second"` // enqueues, closes, abandons and passes
	Conversation float64 `json:"conversations_per_second"`
	RouteMs      Latency `json:"route_ms"`   // one routing pass
	EnqueueMs    float64 `json:"enqueue_ms"` // mean, inside a batch transaction
	CloseMs      float64 `json:"close_ms"`   // mean, inside a batch transaction
}

// SimConcurrent is the real-time run: routers racing, customers and agents acting at once.
type SimConcurrent struct {
	Routers     int     `json:"routers"`
	TimeScale   float64 `json:"time_scale"`
	Assignments int     `json:"assignments"`
	RouteErrors int     `json:"route_errors"`
	// WaitMs is from the enqueue's commit to the assignment's notification, in real time.
	WaitMs       Latency `json:"wait_ms"`
	MaxLagMs     float64 `json:"max_arrival_lag_ms"` // how far customers fell behind their schedule
	Abandoned    int     `json:"abandoned"`
	AbandonLost  int     `json:"abandon_lost_race"` // gave up just as a router took them: fine
	Conversation float64 `json:"conversations_per_second"`
}

// SimInvariants are the checks of the queue's promises: each must be zero.
type SimInvariants struct {
	Checks int `json:"database_checks"`
	// DoubleAssignments are assignments of a conversation already with an agent;
	// AssignedNotWaiting of one that was closed, abandoned or never enqueued.
	DoubleAssignments  int `json:"double_assignments"`
	AssignedNotWaiting int `json:"assigned_not_waiting"`
	// CapacityViolations are assignments that took an agent past max_chats, as the
	// assignments came; the database checks count agents over capacity, agents whose
	// active_chats is not their number of open conversations, sessions with two open
	// requests, and open requests with no agent, at each check.
	CapacityViolations int `json:"capacity_violations"`
	DBOverCapacity     int `json:"db_over_capacity"`
	DBActiveMismatch   int `json:"db_active_chats_mismatch"`
	DBOpenDuplicates   int `json:"db_open_duplicates"`
	DBAssignedNoAgent  int `json:"db_assigned_without_agent"`
	// DBCountMismatch are checks where the database's numbers of queued and assigned requests
	// were not the simulation's (virtual time only, where nothing is in flight).
	DBCountMismatch int `json:"db_count_mismatch"`
	// Stalls are routing passes after which a customer waited while a slot was free
	// (virtual time, one router: the queue must be work-conserving).
	Stalls int `json:"stalls"`
	// AbandonRefused are customers the simulation saw waiting whose abandon the queue refused.
	AbandonRefused int `json:"abandon_refused"`
	// Unfinished are requests still open at the end; Lost are conversations the database does
	// not have closed or abandoned.
	Unfinished int      `json:"unfinished"`
	Lost       int      `json:"lost"`
	Faults     []string `json:"faults,omitempty"` // the first few, in words
}

func (v *SimInvariants) total() int {
	return v.DoubleAssignments + v.AssignedNotWaiting + v.CapacityViolations + v.DBOverCapacity + v.DBActiveMismatch +
		v.DBOpenDuplicates + v.DBAssignedNoAgent + v.DBCountMismatch + v.Stalls + v.AbandonRefused + v.Unfinished + v.Lost
}

// merge adds the database checks of o.
func (v *SimInvariants) merge(o SimInvariants) {
	v.Checks += o.Checks
	v.DBOverCapacity += o.DBOverCapacity
	v.DBActiveMismatch += o.DBActiveMismatch
	v.DBOpenDuplicates += o.DBOpenDuplicates
	v.DBAssignedNoAgent += o.DBAssignedNoAgent
	for _, f := range o.Faults {
		v.fault("%s", f)
	}
}

func (v *SimInvariants) fault(format string, args ...any) {
	if len(v.Faults) < 20 {
		v.Faults = append(v.Faults, fmt.Sprintf(format, args...))
	}
}

// handoffSimCmd is `kefu handoff sim`: a desk of agents and a stream of customers played
// against the real queue on a scratch schema, compared with Erlang C.
func handoffSimCmd(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("handoff sim", flag.ContinueOnError)
	var cfg Config
	cfg.bindFlags(fs)
	var sc SimConfig
	fs.IntVar(&sc.Agents, "agents", 20, "agents online")
	fs.IntVar(&sc.MaxChats, "max-chats", 1, "chats an agent takes at once (1: each agent is one Erlang C server)")
	fs.Float64Var(&sc.ArrivalRate, "arrival-rate", 3.4, "customers asking for a person, per minute (Poisson)")
	fs.DurationVar(&sc.Handle, "handle-time", 5*time.Minute, "mean handling time of a conversation")
	fs.StringVar(&sc.HandleDist, "handle-dist", "exponential", "handling time distribution: exponential, lognormal or fixed")
	fs.Float64Var(&sc.HandleCV, "handle-cv", 1, "lognormal handling times' coefficient of variation (standard deviation / mean)")
	fs.DurationVar(&sc.Patience, "patience", 0, "mean patience of a waiting customer, exponential (0: nobody gives up)")
	fs.IntVar(&sc.Conversations, "conversations", 100000, "customers to simulate")
	fs.IntVar(&sc.Warmup, "warmup", -1, "first customers left out of the figures, while the queue fills (-1: 2%)")
	fs.DurationVar(&sc.SLA, "sla", 20*time.Second, "target wait (whole seconds)")
	fs.Uint64Var(&sc.Seed, "seed", 1, "seed of arrivals, handling times and patience")
	fs.StringVar(&sc.Strategy, "strategy", handoff.LeastBusy, "the skill group's routing strategy: least_busy, round_robin or longest_idle")
	fs.IntVar(&sc.CheckEvery, "check-every", 20000, "events between checks of the invariants against the database (also at the end)")
	fs.IntVar(&sc.Concurrent, "concurrent", 0, "real time instead of virtual: this many routers call Route at once while customers enqueue and agents close")
	fs.Float64Var(&sc.TimeScale, "time-scale", 0, "real time: simulated seconds per second (0: customers arrive at 300 a second)")
	fs.IntVar(&sc.Workers, "workers", 8, "real time: connections the customers and agents share")
	fs.IntVar(&sc.Spread, "spread", 100, "virtual time: also run the ideal queue with this many other seeds, to show how far one run strays by chance")
	jsonOnly := fs.Bool("json", false, "print only the JSON report (no table on stderr)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if sc.Warmup < 0 {
		sc.Warmup = sc.Conversations / 50
	}
	if err := sc.validate(); err != nil {
		return err
	}
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	db, err := openScratch(ctx, cfg, int32(sc.Concurrent+sc.Workers+4), quiet)
	if err != nil {
		return err
	}
	defer db.Close()
	log.Info("handoff sim: scratch schema ready", "schema", db.name, "mode", sc.mode())
	rep, err := handoffSim(ctx, db.Pool, sc, log)
	if err != nil {
		return err
	}
	if !*jsonOnly {
		writeSimTable(os.Stderr, rep)
	}
	out := json.NewEncoder(os.Stdout)
	out.SetIndent("", "  ")
	if err := out.Encode(rep); err != nil {
		return err
	}
	if n := rep.Invariants.total(); n > 0 {
		return fmt.Errorf("handoff sim: %d invariant violations (%v)", n, rep.Invariants.Faults)
	}
	return nil
}

func (sc *SimConfig) mode() string {
	if sc.Concurrent > 0 {
		return "concurrent"
	}
	return "virtual"
}

func (sc *SimConfig) validate() error {
	switch {
	case sc.Agents < 1 || sc.MaxChats < 1:
		return errors.New("-agents and -max-chats must be at least 1")
	case !(sc.ArrivalRate > 0) || sc.Handle <= 0:
		return errors.New("-arrival-rate and -handle-time must be positive")
	case sc.Conversations < 20 || sc.Warmup < 0 || sc.Warmup > sc.Conversations/2:
		return errors.New("-conversations must be at least 20 and -warmup at most half of them")
	case sc.SLA < time.Second || sc.SLA%time.Second != 0:
		return errors.New("-sla must be a whole number of seconds (a skill group's SLA is)")
	case sc.HandleDist != "exponential" && sc.HandleDist != "lognormal" && sc.HandleDist != "fixed":
		return fmt.Errorf("-handle-dist %q: want exponential, lognormal or fixed", sc.HandleDist)
	case sc.HandleDist == "lognormal" && !(sc.HandleCV > 0):
		return errors.New("-handle-cv must be positive for lognormal handling times")
	case sc.Patience < 0 || sc.Concurrent < 0 || sc.TimeScale < 0 || sc.Workers < 1 || sc.Spread < 0:
		return errors.New("-patience, -concurrent, -time-scale and -spread must not be negative, -workers positive")
	}
	if sc.HandleDist != "lognormal" {
		sc.HandleCV = map[string]float64{"exponential": 1, "fixed": 0}[sc.HandleDist]
	}
	if sc.CheckEvery <= 0 {
		sc.CheckEvery = math.MaxInt
	}
	return nil
}

// simSessionBase offsets the simulated customers' session ids from anything real.
const simSessionBase = 1 << 40

// simEpoch is when virtual time starts.
var simEpoch = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

// handoffSim runs the simulation on pool, a migrated schema of its own, and reports.
func handoffSim(ctx context.Context, pool *pgxpool.Pool, sc SimConfig, log *slog.Logger) (SimReport, error) {
	if err := sc.validate(); err != nil {
		return SimReport{}, err
	}
	rep := SimReport{Mode: sc.mode(), Config: sc, Servers: sc.Agents * sc.MaxChats, Measured: sc.Conversations - sc.Warmup}
	if _, err := deskAgents(ctx, pool, sc.Agents, sc.MaxChats, handoff.Group{
		Name: "sim", Strategy: sc.Strategy, SLASeconds: int(sc.SLA / time.Second)}); err != nil {
		return rep, err
	}
	convs := drawConversations(sc)
	if sc.Concurrent > 0 {
		return rep, runConcurrentSim(ctx, pool, sc, convs, &rep, log)
	}

	q := newDBSimQueue(pool, log)
	start := time.Now()
	last := start
	progress := func(done int, at time.Duration) {
		if time.Since(last) < 2*time.Second {
			return
		}
		last = time.Now()
		s := time.Since(start).Seconds()
		log.Info("handoff sim: running", "done", done, "of", len(convs), "per_s", int(float64(done)/s),
			"queue_ops_per_s", int(float64(q.ops())/s), "virtual_days", round4(at.Hours()/24))
	}
	run, err := simulate(ctx, sc, convs, q, progress)
	if err != nil {
		return rep, err
	}
	rep.Seconds = round4(time.Since(start).Seconds())
	rep.Invariants = run.inv
	if err := finalQueueCheck(ctx, pool, len(convs), &rep.Invariants); err != nil {
		return rep, err
	}
	rep.Queue = q.throughput(rep.Seconds, len(convs))
	rep.Simulated = simFigures(sc, convs, run)
	rep.Theory = simTheory(sc, rep.Simulated)
	log.Info("handoff sim: done", "seconds", rep.Seconds, "conversations", len(convs))

	// The ideal queue, fed the same customers.
	ref := slices.Clone(convs)
	for i := range ref {
		ref[i].state, ref[i].assigned, ref[i].left, ref[i].agent = simFuture, 0, 0, 0
	}
	iq := newIdealQueue(sc, len(ref))
	if _, err := simulate(ctx, sc, ref, iq, func(int, time.Duration) {}); err != nil {
		return rep, err
	}
	rep.Reference = &SimReference{MeanWait: round4(simFigures(sc, ref, &simRun{}).MeanWait)}
	for i := range convs {
		a, b := convs[i], ref[i]
		if a.state == b.state && a.assigned == b.assigned && a.left == b.left {
			rep.Reference.Identical++
			continue
		}
		rep.Reference.Differ++
		if rep.Reference.FirstDiff == "" {
			rep.Reference.FirstDiff = fmt.Sprintf("customer %d: the queue's state %d, wait %v; the ideal queue's state %d, wait %v",
				i, a.state, a.assigned-a.arrive, b.state, b.assigned-b.arrive)
		}
	}

	if sc.Spread > 0 && rep.Theory.MeanWait > 0 {
		waits, _, err := idealSpread(ctx, sc, sc.Spread)
		if err != nil {
			return rep, err
		}
		r := rep.Reference
		mean, sd := meanSD(waits)
		r.Seeds, r.SeedsMean, r.SeedsSD = sc.Spread, round4(mean), round4(sd)
		r.SeedsMin, r.SeedsMax = round4(slices.Min(waits)), round4(slices.Max(waits))
		within := 0
		for _, w := range waits {
			if math.Abs(w-rep.Theory.MeanWait) <= 0.1*rep.Theory.MeanWait {
				within++
			}
		}
		r.Within10 = round4(float64(within) / float64(len(waits)))
		if sd > 0 {
			r.Z = round4((rep.Simulated.MeanWait - rep.Theory.MeanWait) / sd)
		}
	}

	// The queue's own metrics over the measured customers.
	from, to := simEpoch.Add(convs[sc.Warmup].arrive), simEpoch.Add(convs[len(convs)-1].arrive+time.Microsecond)
	qr, err := handoff.NewQueue(pool, log).Report(ctx, from, to)
	if err != nil {
		return rep, err
	}
	rep.Report = &SimQueueReport{AvgWait: round4(qr.Total.AvgWait), P90Wait: round4(qr.Total.P90Wait), SLAMet: round4(qr.Total.SLAMet),
		AbandonRate: round4(qr.Total.AbandonRate), Closed: qr.Total.Closed}
	return rep, nil
}

// idealSpread runs the ideal queue with seeds other seeds (sc.Seed+1 on) and returns each
// run's mean wait and share of customers who waited: the spread that chance alone gives a
// run of this size.
func idealSpread(ctx context.Context, sc SimConfig, seeds int) (waits, shares []float64, err error) {
	for i := range uint64(seeds) {
		s := sc
		s.Seed = sc.Seed + 1 + i
		convs := drawConversations(s)
		if _, err := simulate(ctx, s, convs, newIdealQueue(s, len(convs)), func(int, time.Duration) {}); err != nil {
			return nil, nil, err
		}
		f := simFigures(s, convs, &simRun{})
		waits, shares = append(waits, f.MeanWait), append(shares, f.PWait)
	}
	return waits, shares, nil
}

func meanSD(xs []float64) (mean, sd float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	if len(xs) < 2 {
		return mean, 0
	}
	for _, x := range xs {
		sd += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(sd / float64(len(xs)-1))
}

// deskAgents puts n online agents taking maxChats chats each, and a skill group g of all of
// them, into the queue's tables. The rows are written directly: hashing n passwords would take
// longer than a run, and nobody logs in.
func deskAgents(ctx context.Context, pool *pgxpool.Pool, n, maxChats int, g handoff.Group) ([]int64, error) {
	rows, err := pool.Query(ctx, `
INSERT INTO handoff_agent (email, name, password_hash, max_chats, status, roles, last_seen)
SELECT 'sim-' || i || '@kefu.local', 'Agent ' || i, 'none', $2, 'online', '{agent}', now()
FROM generate_series(1, $1) AS i
RETURNING id`, n, maxChats)
	if err != nil {
		return nil, fmt.Errorf("agents: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("agents: %w", err)
	}
	g.Members = ids
	if _, err := handoff.NewDesk(pool).SaveGroup(ctx, g); err != nil {
		return nil, err
	}
	return ids, nil
}

// simConv is one customer, drawn before the run so that the real queue and the ideal one see
// the same customers. Times are from the start of virtual time, in whole microseconds (what
// PostgreSQL keeps).
type simConv struct {
	arrive, handle, patience time.Duration // patience 0: waits for ever
	assigned, left           time.Duration // when an agent got it; when it was closed or abandoned
	agent                    int64
	state                    uint8
}

const (
	simFuture uint8 = iota
	simQueued
	simAssigned
	simClosed
	simAbandoned
)

// drawConversations draws arrivals, handling times and patience from three streams of one seed.
func drawConversations(sc SimConfig) []simConv {
	arr := rand.New(rand.NewPCG(sc.Seed, 1))
	hnd := rand.New(rand.NewPCG(sc.Seed, 2))
	pat := rand.New(rand.NewPCG(sc.Seed, 3))
	gap := float64(time.Minute) / sc.ArrivalRate
	sigma2 := math.Log(1 + sc.HandleCV*sc.HandleCV)
	out := make([]simConv, sc.Conversations)
	var t float64
	for i := range out {
		t += arr.ExpFloat64() * gap
		c := &out[i]
		c.arrive = usec(t)
		var h float64
		switch sc.HandleDist {
		case "fixed":
			h = float64(sc.Handle)
		case "lognormal":
			h = math.Exp(math.Log(float64(sc.Handle)) - sigma2/2 + math.Sqrt(sigma2)*hnd.NormFloat64())
		default:
			h = hnd.ExpFloat64() * float64(sc.Handle)
		}
		c.handle = max(usec(h), time.Microsecond)
		if sc.Patience > 0 {
			c.patience = max(usec(pat.ExpFloat64()*float64(sc.Patience)), time.Microsecond)
		}
	}
	return out
}

func usec(ns float64) time.Duration { return time.Duration(math.Round(ns/1e3)) * time.Microsecond }

// simQueue is what the simulation drives: the real queue, or the ideal one.
type simQueue interface {
	enqueue(ctx context.Context, at time.Duration, conv int) error
	close(ctx context.Context, at time.Duration, conv int) error
	abandon(ctx context.Context, at time.Duration, conv int) (bool, error)
	route(ctx context.Context, at time.Duration) ([]simAssignment, error)
	// check compares the queue's own state with the simulation's, adding what it finds.
	check(ctx context.Context, assigned, queued int, inv *SimInvariants) error
}

type simAssignment struct {
	conv  int
	agent int64
}

type simEvent struct {
	at   time.Duration
	seq  uint64 // FIFO among events at one instant
	kind uint8
	conv int
}

const (
	evArrive uint8 = iota
	evComplete
	evAbandon
)

type simHeap []simEvent

func (h simHeap) Len() int { return len(h) }
func (h simHeap) Less(i, j int) bool {
	return h[i].at < h[j].at || (h[i].at == h[j].at && h[i].seq < h[j].seq)
}
func (h simHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *simHeap) Push(x any)   { *h = append(*h, x.(simEvent)) }
func (h *simHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// simRun is what simulate saw besides the customers' times.
type simRun struct {
	inv      SimInvariants
	busyArea float64 // slot-seconds busy inside the measurement window
	window   float64 // seconds: from the first measured arrival to the last arrival
}

// simulate is the discrete-event simulation in virtual time: customers arrive, give up and are
// served one event at a time; after each event in which a customer waits while a slot is free
// (by the simulation's count), the queue routes at that instant, so a customer waits exactly as
// long as the queue keeps them waiting. Every assignment is checked against what the
// simulation knows: the conversation must be waiting, the agent must have room.
func simulate(ctx context.Context, sc SimConfig, convs []simConv, q simQueue, progress func(done int, at time.Duration)) (*simRun, error) {
	run := &simRun{}
	inv := &run.inv
	servers := sc.Agents * sc.MaxChats
	open := map[int64]int{}
	var h simHeap
	var seq uint64
	push := func(at time.Duration, kind uint8, conv int) {
		seq++
		heap.Push(&h, simEvent{at: at, seq: seq, kind: kind, conv: conv})
	}
	push(convs[0].arrive, evArrive, 0)
	warm, end := convs[sc.Warmup].arrive, convs[len(convs)-1].arrive
	run.window = (end - warm).Seconds()
	var prev time.Duration
	busy, queued, done, events := 0, 0, 0, 0
	for done < len(convs) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if h.Len() == 0 {
			inv.Unfinished += len(convs) - done
			inv.fault("no events left with %d customers unfinished (%d waiting, %d served)", len(convs)-done, queued, busy)
			break
		}
		ev := heap.Pop(&h).(simEvent)
		if lo, hi := max(prev, warm), min(ev.at, end); hi > lo {
			run.busyArea += float64(busy) * (hi - lo).Seconds()
		}
		prev = ev.at
		events++
		c := &convs[ev.conv]
		switch ev.kind {
		case evArrive:
			if err := q.enqueue(ctx, ev.at, ev.conv); err != nil {
				return nil, err
			}
			c.state = simQueued
			queued++
			if ev.conv+1 < len(convs) {
				push(convs[ev.conv+1].arrive, evArrive, ev.conv+1)
			}
			if c.patience > 0 {
				push(ev.at+c.patience, evAbandon, ev.conv)
			}
		case evAbandon:
			if c.state != simQueued {
				continue // served before patience ran out
			}
			ok, err := q.abandon(ctx, ev.at, ev.conv)
			if err != nil {
				return nil, err
			}
			if !ok {
				inv.AbandonRefused++
				inv.fault("customer %d: waiting, but the queue refused the abandon", ev.conv)
			}
			c.state, c.left = simAbandoned, ev.at
			queued--
			done++
		case evComplete:
			if err := q.close(ctx, ev.at, ev.conv); err != nil {
				return nil, err
			}
			open[c.agent]--
			busy--
			c.state, c.left = simClosed, ev.at
			done++
		}
		if queued > 0 && busy < servers {
			as, err := q.route(ctx, ev.at)
			if err != nil {
				return nil, err
			}
			for _, a := range as {
				x := &convs[a.conv]
				switch x.state {
				case simQueued:
				case simAssigned:
					inv.DoubleAssignments++
					inv.fault("customer %d assigned to agent %d while with agent %d", a.conv, a.agent, x.agent)
					continue
				default:
					inv.AssignedNotWaiting++
					inv.fault("customer %d assigned to agent %d in state %d", a.conv, a.agent, x.state)
					continue
				}
				open[a.agent]++
				if open[a.agent] > sc.MaxChats {
					inv.CapacityViolations++
					inv.fault("agent %d given a chat beyond max_chats %d", a.agent, sc.MaxChats)
				}
				x.state, x.assigned, x.agent = simAssigned, ev.at, a.agent
				busy++
				queued--
				push(ev.at+x.handle, evComplete, a.conv)
			}
			if queued > 0 && busy < servers {
				inv.Stalls++
				inv.fault("at %v %d customers wait and %d slots are free after a routing pass", ev.at, queued, servers-busy)
			}
		}
		if events%sc.CheckEvery == 0 {
			if err := q.check(ctx, busy, queued, inv); err != nil {
				return nil, err
			}
		}
		progress(done, ev.at)
	}
	if err := q.check(ctx, busy, queued, inv); err != nil {
		return nil, err
	}
	return run, nil
}

// simFigures summarises the measured customers (after the warm-up).
func simFigures(sc SimConfig, convs []simConv, run *simRun) *SimFigures {
	measured := convs[sc.Warmup:]
	all := make([]float64, 0, len(measured))
	var served []float64
	var delayed, met, abandoned int
	for _, c := range measured {
		var w float64
		switch c.state {
		case simAssigned, simClosed:
			w = (c.assigned - c.arrive).Seconds()
			served = append(served, w)
			if c.assigned-c.arrive <= sc.SLA {
				met++
			}
		case simAbandoned:
			w = (c.left - c.arrive).Seconds()
			abandoned++
		}
		if w > 0 {
			delayed++
		}
		all = append(all, w)
	}
	n := float64(len(measured))
	f := &SimFigures{PWait: round4(float64(delayed) / n), SLAMet: round4(float64(met) / n), Abandoned: round4(float64(abandoned) / n)}
	var sum float64
	for _, w := range all {
		sum += w
	}
	f.MeanWait = round4(sum / n)
	f.MeanWaitCI95 = round4(batchMeansCI95(all, 20))
	slices.Sort(served)
	if len(served) > 0 {
		var s float64
		for _, w := range served {
			s += w
		}
		f.MeanWaitServed = round4(s / float64(len(served)))
		f.P50, f.P90, f.P99 = round4(percentile(served, 0.5)), round4(percentile(served, 0.9)), round4(percentile(served, 0.99))
		f.Max = round4(served[len(served)-1])
	}
	if run.window > 0 {
		f.Utilisation = round4(run.busyArea / (float64(sc.Agents*sc.MaxChats) * run.window))
	}
	return f
}

// batchMeansCI95 is the half-width of a 95% confidence interval for the mean of a correlated
// series: the series cut into k batches, the batch means treated as independent (Student's t
// with k−1 degrees of freedom; 2.093 for k = 20).
func batchMeansCI95(xs []float64, k int) float64 {
	size := len(xs) / k
	if size < 2 {
		return math.NaN()
	}
	means := make([]float64, k)
	var grand float64
	for b := range k {
		var s float64
		for _, x := range xs[b*size : (b+1)*size] {
			s += x
		}
		means[b] = s / float64(size)
		grand += means[b]
	}
	grand /= float64(k)
	var ss float64
	for _, m := range means {
		ss += (m - grand) * (m - grand)
	}
	t := 2.093 // t(0.975, 19)
	if k != 20 {
		t = 1.96 + 2.5/float64(k-1) // close enough for other batch counts
	}
	return t * math.Sqrt(ss/float64(k-1)/float64(k))
}

// simTheory is Erlang C's (or, with patience, Erlang A's) prediction for sc.
func simTheory(sc SimConfig, f *SimFigures) *SimTheory {
	m := handoff.MMN{Servers: sc.Agents * sc.MaxChats, Rate: sc.ArrivalRate / 60, Handle: sc.Handle}
	var t SimTheory
	if sc.Patience > 0 {
		a := handoff.ErlangA{MMN: m, Patience: sc.Patience}.Solve()
		t = SimTheory{Model: "erlang_a", MeanWait: round4(a.MeanQueue), PWait: round4(a.PWait), Abandoned: round4(a.PAbandon),
			Utilisation: round4(m.Load() * (1 - a.PAbandon) / float64(m.Servers)),
			Note:        "Erlang A (M/M/N+M): the mean wait is the mean time in the queue of every customer, served or not"}
	} else {
		t = SimTheory{Model: "erlang_c", MeanWait: round4(m.MeanWait()), PWait: round4(m.PWait()), SLAMet: round4(m.WaitWithin(sc.SLA)),
			P50: round4(m.WaitQuantile(0.5)), P90: round4(m.WaitQuantile(0.9)), P99: round4(m.WaitQuantile(0.99)),
			Utilisation: round4(m.Utilisation())}
		if !m.Stable() {
			t.Note = "the load is at or above the agents' capacity: the queue grows without bound"
			t.MeanWait, t.P50, t.P90, t.P99 = 0, 0, 0, 0
		}
	}
	if t.MeanWait > 0 {
		t.MeanWaitRelErr = round4((f.MeanWait - t.MeanWait) / t.MeanWait)
	}
	if sc.HandleDist != "exponential" && sc.Patience == 0 && t.MeanWait > 0 {
		t.AdjustedMeanWait = round4(t.MeanWait * (1 + sc.HandleCV*sc.HandleCV) / 2)
		t.AdjustedRelErr = round4((f.MeanWait - t.AdjustedMeanWait) / t.AdjustedMeanWait)
		t.Note = "handling times are not exponential: Erlang C is an approximation; the adjusted mean wait is Allen–Cunneen's"
	}
	return &t
}

// dbSimQueue is the real queue under a virtual clock. Customers' enqueues, closes and abandons
// between two routing passes share one transaction (committed before each pass, and every 256
// operations): nothing routes in between, so nothing could see them earlier anyway.
type dbSimQueue struct {
	pool  *pgxpool.Pool
	q     *handoff.Queue
	clock time.Time // read by q.Now
	tx    pgx.Tx
	inTx  int

	enqueues, closes, abandons, routes, emptyRoutes, commits int
	enqueueTime, closeTime                                   time.Duration
	routeMs                                                  []float64
}

func newDBSimQueue(pool *pgxpool.Pool, log *slog.Logger) *dbSimQueue {
	d := &dbSimQueue{pool: pool, q: handoff.NewQueue(pool, log), clock: simEpoch}
	d.q.Now = func() time.Time { return d.clock }
	d.q.HeartbeatTimeout = 0
	return d
}

func (d *dbSimQueue) begin(ctx context.Context, at time.Duration) (pgx.Tx, error) {
	d.clock = simEpoch.Add(at)
	if d.tx == nil {
		tx, err := d.pool.Begin(ctx)
		if err != nil {
			return nil, err
		}
		d.tx = tx
	}
	d.inTx++
	return d.tx, nil
}

func (d *dbSimQueue) flush(ctx context.Context) error {
	if d.tx == nil {
		return nil
	}
	err := d.tx.Commit(ctx)
	d.tx, d.inTx = nil, 0
	d.commits++
	return err
}

func (d *dbSimQueue) maybeFlush(ctx context.Context) error {
	if d.inTx >= 256 {
		return d.flush(ctx)
	}
	return nil
}

func (d *dbSimQueue) enqueue(ctx context.Context, at time.Duration, conv int) error {
	tx, err := d.begin(ctx, at)
	if err != nil {
		return err
	}
	t0 := time.Now()
	ok, err := d.q.Enqueue(ctx, tx, handoff.Request{SessionID: simSessionBase + int64(conv), Language: "zh", Channel: "web", Reason: "customer_asked"})
	d.enqueueTime += time.Since(t0)
	d.enqueues++
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("customer %d: the queue already had an open request for a new session", conv)
	}
	return d.maybeFlush(ctx)
}

func (d *dbSimQueue) close(ctx context.Context, at time.Duration, conv int) error {
	tx, err := d.begin(ctx, at)
	if err != nil {
		return err
	}
	t0 := time.Now()
	ok, err := d.q.Close(ctx, tx, simSessionBase+int64(conv), "resolved")
	d.closeTime += time.Since(t0)
	d.closes++
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("customer %d: the queue has no open request to close", conv)
	}
	return d.maybeFlush(ctx)
}

func (d *dbSimQueue) abandon(ctx context.Context, at time.Duration, conv int) (bool, error) {
	tx, err := d.begin(ctx, at)
	if err != nil {
		return false, err
	}
	d.abandons++
	ok, err := d.q.Abandon(ctx, tx, simSessionBase+int64(conv))
	if err != nil {
		return false, err
	}
	return ok, d.maybeFlush(ctx)
}

func (d *dbSimQueue) route(ctx context.Context, at time.Duration) ([]simAssignment, error) {
	if err := d.flush(ctx); err != nil {
		return nil, err
	}
	d.clock = simEpoch.Add(at)
	t0 := time.Now()
	as, err := d.q.Route(ctx)
	d.routeMs = append(d.routeMs, float64(time.Since(t0).Microseconds())/1000)
	d.routes++
	if err != nil {
		return nil, err
	}
	if len(as) == 0 {
		d.emptyRoutes++
	}
	out := make([]simAssignment, len(as))
	for i, a := range as {
		conv := a.SessionID - simSessionBase
		if conv < 0 || conv >= math.MaxInt32 {
			return nil, fmt.Errorf("the queue assigned session %d, which the simulation never enqueued", a.SessionID)
		}
		out[i] = simAssignment{conv: int(conv), agent: a.AgentID}
	}
	return out, nil
}

func (d *dbSimQueue) ops() int { return d.enqueues + d.closes + d.abandons + d.routes }

func (d *dbSimQueue) check(ctx context.Context, assigned, queued int, inv *SimInvariants) error {
	if err := d.flush(ctx); err != nil {
		return err
	}
	c, err := checkQueue(ctx, d.pool, inv)
	if err != nil {
		return err
	}
	if c.assigned != assigned || c.queued != queued {
		inv.DBCountMismatch++
		inv.fault("the database has %d assigned and %d queued, the simulation %d and %d", c.assigned, c.queued, assigned, queued)
	}
	return nil
}

func (d *dbSimQueue) throughput(seconds float64, convs int) SimThroughput {
	return SimThroughput{Enqueues: d.enqueues, Closes: d.closes, Abandons: d.abandons, Routes: d.routes, EmptyRoutes: d.emptyRoutes,
		Transactions: d.commits + d.routes, OpsPerSecond: round4(float64(d.ops()) / seconds),
		Conversation: round4(float64(convs) / seconds), RouteMs: latencyOf(d.routeMs),
		EnqueueMs: round4(d.enqueueTime.Seconds() * 1000 / float64(max(1, d.enqueues))),
		CloseMs:   round4(d.closeTime.Seconds() * 1000 / float64(max(1, d.closes)))}
}

type queueCounts struct{ assigned, queued int }

// checkQueue checks the queue's invariants in the database, in one statement (one snapshot):
// no agent holds more open conversations than max_chats, every agent's active_chats is the
// number it holds, no session has two open requests, no assigned request lacks an agent.
func checkQueue(ctx context.Context, pool *pgxpool.Pool, inv *SimInvariants) (queueCounts, error) {
	var over, mismatch, dups, noAgent int
	var c queueCounts
	err := pool.QueryRow(ctx, `
WITH held AS (
    SELECT agent_id, count(*) AS n FROM handoff_request WHERE state = 'assigned' GROUP BY agent_id
)
SELECT (SELECT count(*) FROM handoff_agent a LEFT JOIN held h ON h.agent_id = a.id WHERE coalesce(h.n, 0) > a.max_chats),
       (SELECT count(*) FROM handoff_agent a LEFT JOIN held h ON h.agent_id = a.id WHERE coalesce(h.n, 0) <> a.active_chats),
       (SELECT count(*) FROM (SELECT session_id FROM handoff_request WHERE state IN ('queued', 'assigned')
                              GROUP BY session_id HAVING count(*) > 1) d),
       (SELECT count(*) FROM handoff_request WHERE state = 'assigned' AND agent_id IS NULL),
       (SELECT coalesce(sum(n), 0) FROM held),
       (SELECT count(*) FROM handoff_request WHERE state = 'queued')`).Scan(&over, &mismatch, &dups, &noAgent, &c.assigned, &c.queued)
	if err != nil {
		return c, fmt.Errorf("checking the queue: %w", err)
	}
	inv.Checks++
	inv.DBOverCapacity += over
	inv.DBActiveMismatch += mismatch
	inv.DBOpenDuplicates += dups
	inv.DBAssignedNoAgent += noAgent
	if over+mismatch+dups+noAgent > 0 {
		inv.fault("database check %d: %d agents over capacity, %d with active_chats off, %d sessions with two open requests, %d assigned without agent",
			inv.Checks, over, mismatch, dups, noAgent)
	}
	return c, nil
}

// finalQueueCheck checks that every customer ended closed or abandoned, once.
func finalQueueCheck(ctx context.Context, pool *pgxpool.Pool, convs int, inv *SimInvariants) error {
	var open, ended, sessions int
	err := pool.QueryRow(ctx, `
SELECT count(*) FILTER (WHERE state IN ('queued', 'assigned')), count(*) FILTER (WHERE state IN ('closed', 'abandoned')),
       count(DISTINCT session_id)
FROM handoff_request WHERE session_id >= $1`, int64(simSessionBase)).Scan(&open, &ended, &sessions)
	if err != nil {
		return fmt.Errorf("checking the queue: %w", err)
	}
	inv.Unfinished += open
	if ended != convs || sessions != convs {
		inv.Lost += convs - min(ended, sessions)
		inv.fault("the database has %d requests ended for %d sessions, of %d customers", ended, sessions, convs)
	}
	return nil
}

// idealQueue is the queue as theory has it: FIFO, and a customer is served the moment a slot
// is free. Which agent takes a customer does not change anyone's wait.
type idealQueue struct {
	fifo  []int
	head  int
	state []uint8
	agent []int64
	free  []int64 // one entry per free slot
}

func newIdealQueue(sc SimConfig, n int) *idealQueue {
	q := &idealQueue{state: make([]uint8, n), agent: make([]int64, n)}
	for a := range sc.Agents {
		for range sc.MaxChats {
			q.free = append(q.free, int64(a+1))
		}
	}
	return q
}

func (q *idealQueue) enqueue(_ context.Context, _ time.Duration, conv int) error {
	q.fifo = append(q.fifo, conv)
	q.state[conv] = simQueued
	return nil
}

func (q *idealQueue) close(_ context.Context, _ time.Duration, conv int) error {
	q.free = append(q.free, q.agent[conv])
	q.state[conv] = simClosed
	return nil
}

func (q *idealQueue) abandon(_ context.Context, _ time.Duration, conv int) (bool, error) {
	if q.state[conv] != simQueued {
		return false, nil
	}
	q.state[conv] = simAbandoned
	return true, nil
}

func (q *idealQueue) route(context.Context, time.Duration) ([]simAssignment, error) {
	var out []simAssignment
	for q.head < len(q.fifo) && len(q.free) > 0 {
		c := q.fifo[q.head]
		q.head++
		if q.state[c] != simQueued {
			continue
		}
		a := q.free[len(q.free)-1]
		q.free = q.free[:len(q.free)-1]
		q.state[c], q.agent[c] = simAssigned, a
		out = append(out, simAssignment{conv: c, agent: a})
	}
	return out, nil
}

func (q *idealQueue) check(context.Context, int, int, *SimInvariants) error { return nil }

// runConcurrentSim is the real-time run: the customers arrive on their schedule (time-scaled),
// each enqueue and close is a transaction of its own on one of the workers' connections, and
// sc.Concurrent routers, each a Queue of its own, call Route at once whenever there may be
// work. Every assignment is heard through the notify callback and checked against what the
// simulation knows; the database is checked every two seconds and at the end.
func runConcurrentSim(ctx context.Context, pool *pgxpool.Pool, sc SimConfig, convs []simConv, rep *SimReport, log *slog.Logger) error {
	scale := sc.TimeScale
	if scale == 0 {
		scale = 300 / (sc.ArrivalRate / 60) // 300 customers a second
	}
	scaled := func(d time.Duration) time.Duration { return time.Duration(float64(d) / scale) }
	cr := &SimConcurrent{Routers: sc.Concurrent, TimeScale: round4(scale)}
	rep.Concurrent = cr
	inv := &rep.Invariants

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type job struct {
		kind uint8
		conv int
	}
	jobs := make(chan job, 1<<16)
	var (
		mu          sync.Mutex // guards the tracking below and inv
		state       = make([]uint8, len(convs))
		agentOf     = make([]int64, len(convs))
		committed   = make([]time.Time, len(convs))
		notified    = make([]time.Time, len(convs))
		open        = map[int64]int{}
		assignments int
		done        atomic.Int64
		lastDone    atomic.Int64
		routes      atomic.Int64
		empty       atomic.Int64
		routeErrs   atomic.Int64
		ops         atomic.Int64
		timers      sync.WaitGroup
	)
	wakes := make([]chan struct{}, sc.Concurrent)
	for i := range wakes {
		wakes[i] = make(chan struct{}, 1)
	}
	wakeAll := func() {
		for _, w := range wakes {
			select {
			case w <- struct{}{}:
			default:
			}
		}
	}
	later := func(d time.Duration, j job) {
		timers.Add(1)
		time.AfterFunc(d, func() {
			defer timers.Done()
			select {
			case jobs <- j:
			case <-ctx.Done():
			}
		})
	}
	notify := func(_ context.Context, as []handoff.Assignment) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		for _, a := range as {
			assignments++
			conv := int(a.SessionID - simSessionBase)
			if conv < 0 || conv >= len(convs) {
				inv.AssignedNotWaiting++
				inv.fault("session %d assigned, which the simulation never enqueued", a.SessionID)
				continue
			}
			switch state[conv] {
			case simQueued:
			case simAssigned:
				inv.DoubleAssignments++
				inv.fault("customer %d assigned to agent %d while with agent %d", conv, a.AgentID, agentOf[conv])
				continue
			default:
				inv.AssignedNotWaiting++
				inv.fault("customer %d assigned to agent %d in state %d", conv, a.AgentID, state[conv])
				continue
			}
			open[a.AgentID]++
			if open[a.AgentID] > sc.MaxChats {
				inv.CapacityViolations++
				inv.fault("agent %d given a chat beyond max_chats %d", a.AgentID, sc.MaxChats)
			}
			state[conv], agentOf[conv], notified[conv] = simAssigned, a.AgentID, now
			later(scaled(convs[conv].handle), job{evComplete, conv})
		}
	}

	var routers sync.WaitGroup
	for i := range sc.Concurrent {
		q := handoff.NewQueue(pool, log)
		q.HeartbeatTimeout = 0
		q.SetOwner(nil, notify)
		routers.Go(func() {
			idle := time.NewTimer(time.Hour)
			for ctx.Err() == nil {
				as, err := q.Route(ctx)
				routes.Add(1)
				if err != nil {
					if ctx.Err() == nil {
						routeErrs.Add(1)
						log.Warn("handoff sim: routing pass failed", "err", err)
						time.Sleep(10 * time.Millisecond)
					}
					continue
				}
				if len(as) > 0 {
					continue
				}
				empty.Add(1)
				idle.Reset(5 * time.Millisecond)
				select {
				case <-wakes[i]:
				case <-idle.C:
				case <-ctx.Done():
				}
			}
		})
	}

	q := handoff.NewQueue(pool, log) // the customers' and agents' side
	var workerErr error
	var errOnce sync.Once
	fail := func(err error) {
		errOnce.Do(func() { workerErr = err; cancel() })
	}
	var workers sync.WaitGroup
	for range sc.Workers {
		workers.Go(func() {
			for {
				var j job
				select {
				case j = <-jobs:
				case <-ctx.Done():
					return
				}
				session := simSessionBase + int64(j.conv)
				if j.kind == evAbandon {
					mu.Lock()
					waiting := state[j.conv] == simQueued
					mu.Unlock()
					if !waiting {
						continue // served before patience ran out
					}
				}
				ended := false
				err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					ended = false // BeginFunc does not retry, but be plain about it
					switch j.kind {
					case evArrive:
						mu.Lock()
						state[j.conv] = simQueued // before the commit: a router may assign it the moment it commits
						mu.Unlock()
						ok, err := q.Enqueue(ctx, tx, handoff.Request{SessionID: session, Language: "zh", Channel: "web", Reason: "customer_asked"})
						if err == nil && !ok {
							err = fmt.Errorf("customer %d: the queue already had an open request for a new session", j.conv)
						}
						return err
					case evComplete:
						ok, err := q.Close(ctx, tx, session, "resolved")
						if err != nil {
							return err
						}
						if !ok {
							return fmt.Errorf("customer %d: the queue has no open request to close", j.conv)
						}
						// Counted free before the commit, while this transaction holds the
						// agent's row: no router can give the agent a chat before it commits.
						mu.Lock()
						open[agentOf[j.conv]]--
						state[j.conv] = simClosed
						mu.Unlock()
						ended = true
					case evAbandon:
						ok, err := q.Abandon(ctx, tx, session)
						if err != nil || !ok {
							if err == nil {
								mu.Lock()
								cr.AbandonLost++ // a router took it between the look above and this transaction
								mu.Unlock()
							}
							return err
						}
						mu.Lock()
						if state[j.conv] != simQueued {
							inv.AbandonRefused++
							inv.fault("customer %d abandoned in the database while the simulation had state %d", j.conv, state[j.conv])
						}
						state[j.conv] = simAbandoned
						cr.Abandoned++
						mu.Unlock()
						ended = true
					}
					return nil
				})
				if err != nil {
					if ctx.Err() == nil {
						fail(err)
					}
					return
				}
				if j.kind == evArrive {
					t := time.Now()
					mu.Lock()
					committed[j.conv] = t
					mu.Unlock()
				}
				ops.Add(1)
				wakeAll()
				if ended {
					done.Add(1)
				}
			}
		})
	}

	// The customers, on schedule; each one's patience starts when they arrive.
	start := time.Now()
	var maxLag time.Duration
	var arrivals sync.WaitGroup
	arrivals.Go(func() {
		for i := range convs {
			due := start.Add(scaled(convs[i].arrive))
			if d := time.Until(due); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return
				}
			} else {
				maxLag = max(maxLag, -d)
			}
			select {
			case jobs <- job{evArrive, i}:
			case <-ctx.Done():
				return
			}
			if convs[i].patience > 0 {
				later(scaled(convs[i].patience), job{evAbandon, i})
			}
		}
	})

	// Progress, the database checks, and the end.
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	stuck := time.Now()
	var err error
	for err == nil && done.Load() < int64(len(convs)) {
		select {
		case <-ctx.Done():
			err = ctx.Err()
			continue
		case <-tick.C:
		}
		n := done.Load()
		s := time.Since(start).Seconds()
		log.Info("handoff sim: running", "done", n, "of", len(convs), "per_s", int(float64(n)/s),
			"queue_ops_per_s", int(float64(ops.Load()+routes.Load())/s), "routes", routes.Load())
		var found SimInvariants
		_, cerr := checkQueue(ctx, pool, &found)
		if cerr != nil && ctx.Err() == nil {
			err = cerr
		}
		mu.Lock()
		inv.merge(found)
		mu.Unlock()
		if n != lastDone.Load() {
			lastDone.Store(n)
			stuck = time.Now()
		} else if time.Since(stuck) > time.Minute {
			err = fmt.Errorf("no conversation ended for a minute with %d of %d done", n, len(convs))
		}
	}
	rep.Seconds = round4(time.Since(start).Seconds())
	cancel()
	arrivals.Wait()
	routers.Wait()
	workers.Wait()
	timers.Wait()
	if workerErr != nil {
		return workerErr
	}
	if err != nil {
		return err
	}
	bg := context.WithoutCancel(ctx)
	if _, err := checkQueue(bg, pool, inv); err != nil {
		return err
	}
	if err := finalQueueCheck(bg, pool, len(convs), inv); err != nil {
		return err
	}
	var waits []float64
	for i := range convs {
		if !notified[i].IsZero() && !committed[i].IsZero() {
			waits = append(waits, max(0, float64(notified[i].Sub(committed[i]).Microseconds())/1000))
		}
	}
	cr.WaitMs = latencyOf(waits)
	cr.Assignments = assignments
	cr.RouteErrors = int(routeErrs.Load())
	cr.MaxLagMs = round4(float64(maxLag.Microseconds()) / 1000)
	cr.Conversation = round4(float64(len(convs)) / rep.Seconds)
	rep.Queue = SimThroughput{Enqueues: len(convs), Closes: assignments, Abandons: cr.Abandoned + cr.AbandonLost,
		Routes: int(routes.Load()), EmptyRoutes: int(empty.Load()),
		OpsPerSecond: round4(float64(ops.Load()+routes.Load()) / rep.Seconds), Conversation: cr.Conversation}
	rep.Queue.Transactions = rep.Queue.Enqueues + rep.Queue.Closes + rep.Queue.Abandons + rep.Queue.Routes
	return nil
}

// writeSimTable prints the report for people.
func writeSimTable(w io.Writer, r SimReport) {
	c := r.Config
	fmt.Fprintf(w, "\nkefu handoff sim (%s): %d agents × %d chats, %.4g customers/min, handling %v %s, SLA %v, patience %v, %d customers (%d measured)\n",
		r.Mode, c.Agents, c.MaxChats, c.ArrivalRate, c.Handle, c.HandleDist, c.SLA, c.Patience, c.Conversations, r.Measured)
	if f, t := r.Simulated, r.Theory; f != nil && t != nil {
		fmt.Fprintf(w, "%-24s %-22s %-14s\n", "", "simulated", strings.ReplaceAll(t.Model, "_", " "))
		fmt.Fprintf(w, "%-24s %-22s %-14s %+.1f%%\n", "mean wait", fmt.Sprintf("%.2f s ± %.2f", f.MeanWait, f.MeanWaitCI95),
			fmt.Sprintf("%.2f s", t.MeanWait), 100*t.MeanWaitRelErr)
		if t.AdjustedMeanWait > 0 {
			fmt.Fprintf(w, "%-24s %-22s %-14s %+.1f%%\n", "  (Allen–Cunneen)", "", fmt.Sprintf("%.2f s", t.AdjustedMeanWait), 100*t.AdjustedRelErr)
		}
		fmt.Fprintf(w, "%-24s %-22.4f %-14.4f\n", "P(wait > 0)", f.PWait, t.PWait)
		fmt.Fprintf(w, "%-24s %-22s %-14s\n", "wait p50 / p90 / p99", fmt.Sprintf("%.1f / %.1f / %.1f s", f.P50, f.P90, f.P99),
			fmt.Sprintf("%.1f / %.1f / %.1f s", t.P50, t.P90, t.P99))
		fmt.Fprintf(w, "%-24s %-22.4f %-14.4f\n", fmt.Sprintf("SLA met (≤ %v)", c.SLA), f.SLAMet, t.SLAMet)
		fmt.Fprintf(w, "%-24s %-22.4f %-14.4f\n", "abandoned", f.Abandoned, t.Abandoned)
		fmt.Fprintf(w, "%-24s %-22.4f %-14.4f\n", "agent utilisation", f.Utilisation, t.Utilisation)
		if t.Note != "" {
			fmt.Fprintf(w, "  note: %s\n", t.Note)
		}
	}
	if ref := r.Reference; ref != nil {
		fmt.Fprintf(w, "ideal queue, same customers: %d identical, %d differ (mean wait %.2f s)\n", ref.Identical, ref.Differ, ref.MeanWait)
		if ref.Seeds > 0 {
			fmt.Fprintf(w, "ideal queue, %d other seeds: mean wait %.2f s, sd %.2f s (%.2f–%.2f); %.0f%% of seeds within 10%% of the prediction; this run z = %+.2f\n",
				ref.Seeds, ref.SeedsMean, ref.SeedsSD, ref.SeedsMin, ref.SeedsMax, 100*ref.Within10, ref.Z)
		}
	}
	if qr := r.Report; qr != nil {
		fmt.Fprintf(w, "the queue's own report: avg wait %.2f s, p90 %.1f s, SLA met %.4f, abandoned %.4f\n", qr.AvgWait, qr.P90Wait, qr.SLAMet, qr.AbandonRate)
	}
	q := r.Queue
	fmt.Fprintf(w, "real queue: %.0f ops/s, %.0f customers/s over %.1f s: %d enqueues, %d closes, %d abandons, %d routing passes (%d empty)\n",
		q.OpsPerSecond, q.Conversation, r.Seconds, q.Enqueues, q.Closes, q.Abandons, q.Routes, q.EmptyRoutes)
	if q.RouteMs.P50 > 0 {
		fmt.Fprintf(w, "  routing pass p50 %.2f ms, p99 %.2f ms; enqueue %.2f ms, close %.2f ms\n", q.RouteMs.P50, q.RouteMs.P99, q.EnqueueMs, q.CloseMs)
	}
	if cc := r.Concurrent; cc != nil {
		fmt.Fprintf(w, "concurrent: %d routers, time ×%.0f, %d assignments, wait (commit → notify) p50 %.1f ms p99 %.1f ms max %.1f ms, %d route errors, %d abandoned (%d lost the race to a router)\n",
			cc.Routers, cc.TimeScale, cc.Assignments, cc.WaitMs.P50, cc.WaitMs.P99, cc.WaitMs.Max, cc.RouteErrors, cc.Abandoned, cc.AbandonLost)
	}
	v := r.Invariants
	fmt.Fprintf(w, "invariants: %d double assignments, %d assigned while not waiting, %d capacity violations; %d database checks: %d over capacity, %d active_chats off, %d duplicate open, %d count mismatches; %d stalls, %d unfinished, %d lost\n",
		v.DoubleAssignments, v.AssignedNotWaiting, v.CapacityViolations, v.Checks, v.DBOverCapacity, v.DBActiveMismatch,
		v.DBOpenDuplicates, v.DBCountMismatch, v.Stalls, v.Unfinished, v.Lost)
	for _, f := range v.Faults {
		fmt.Fprintf(w, "  fault: %s\n", f)
	}
}
