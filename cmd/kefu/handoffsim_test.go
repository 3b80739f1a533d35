package main

import (
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/kefu-dev/kefu/handoff"
	"github.com/kefu-dev/kefu/internal/pgtest"
)

// TestHandoffSim plays 2,000 customers against the real queue, in virtual time and in real
// time with routers racing, and checks that the queue keeps its promises (no double
// assignment, no agent past capacity, nothing lost) and behaves like the theory says.
func TestHandoffSim(t *testing.T) {
	t.Parallel()
	// Five agents at 75% utilisation: Erlang C predicts a mean wait of 22.2 s, and that 46% wait.
	base := SimConfig{Agents: 5, MaxChats: 1, ArrivalRate: 3.75, Handle: time.Minute, HandleDist: "exponential",
		Conversations: 2000, Warmup: 100, SLA: 20 * time.Second, Seed: 7, Strategy: handoff.LeastBusy, CheckEvery: 500, Workers: 4}
	setup := func(t *testing.T) *slog.Logger {
		t.Helper()
		return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}

	t.Run("VirtualTimeAgreesWithErlangC", func(t *testing.T) {
		t.Parallel()
		log := setup(t)
		pool := pgtest.Schema(t, handoff.Migrations())
		rep, err := handoffSim(t.Context(), pool, base, log)
		if err != nil {
			t.Fatal(err)
		}
		if n := rep.Invariants.total(); n != 0 {
			t.Fatalf("%d invariant violations: %+v", n, rep.Invariants)
		}
		if rep.Invariants.Checks < 5 {
			t.Errorf("%d database checks, want one per 500 events and one at the end", rep.Invariants.Checks)
		}
		// The exact check: the real queue gives every customer the wait the ideal queue does.
		if ref := rep.Reference; ref.Differ != 0 || ref.Identical != base.Conversations {
			t.Fatalf("the real queue and the ideal one differ for %d customers: %s", ref.Differ, ref.FirstDiff)
		}
		// The queue's own metrics saw the same waits.
		if got, want := rep.Report.AvgWait, rep.Simulated.MeanWaitServed; math.Abs(got-want) > 1e-3 {
			t.Errorf("the queue's report has a mean wait of %v s, the simulation %v s", got, want)
		}

		// The statistical check. How far the mean of 1,900 correlated waits strays from
		// Erlang C is measured, not guessed: the ideal queue (which the real one matched
		// exactly) runs with 200 other seeds, and the real queue's mean wait must lie within
		// five of their standard deviations of the prediction, its share of customers who
		// waited within four. The mean wait is skewed to the right: over 10,000 seeds of the
		// ideal queue 0.15% fell beyond five standard deviations (0.55% beyond four), and
		// 0.04% of the shares beyond four. A queue that left an agent idle while a customer
		// waited, or gave an agent two customers at once, would be off by far more.
		m := handoff.MMN{Servers: base.Agents, Rate: base.ArrivalRate / 60, Handle: base.Handle}
		const reps = 200
		waits, shares, err := idealSpread(t.Context(), base, reps)
		if err != nil {
			t.Fatal(err)
		}
		meanWait, sdWait := meanSD(waits)
		_, sdShare := meanSD(shares)
		got := rep.Simulated
		t.Logf("mean wait %.2f s (95%% CI ± %.2f), Erlang C %.2f s; the ideal queue over %d seeds %.2f s, sd %.2f s; P(wait) %.3f, Erlang C %.3f, sd %.3f",
			got.MeanWait, got.MeanWaitCI95, m.MeanWait(), reps, meanWait, sdWait, got.PWait, m.PWait(), sdShare)
		if math.Abs(got.MeanWait-m.MeanWait()) > 5*sdWait {
			t.Errorf("mean wait %.2f s, Erlang C %.2f s: more than 5 sd (%.2f s) apart", got.MeanWait, m.MeanWait(), sdWait)
		}
		if math.Abs(got.PWait-m.PWait()) > 4*sdShare {
			t.Errorf("P(wait) %.3f, Erlang C %.3f: more than 4 sd (%.3f) apart", got.PWait, m.PWait(), sdShare)
		}
		// The simulation itself, averaged over the 200 seeds (380,000 waits), is within four
		// standard errors of the theory: the check on the check.
		if se := sdWait / math.Sqrt(reps); math.Abs(meanWait-m.MeanWait()) > 4*se {
			t.Errorf("the ideal queue's mean wait over %d seeds is %.2f s, Erlang C %.2f s: more than 4 standard errors (%.2f s) apart",
				reps, meanWait, m.MeanWait(), se)
		}
	})

	t.Run("ConcurrentRoutersNeverDoubleAssign", func(t *testing.T) {
		t.Parallel()
		log := setup(t)
		pool := pgtest.Schema(t, handoff.Migrations())
		sc := base
		sc.Agents, sc.MaxChats, sc.ArrivalRate, sc.Conversations, sc.Warmup = 10, 2, 15, 1500, 0
		sc.Patience = 45 * time.Second // abandons race with routers too
		sc.Concurrent = 3
		sc.TimeScale = 1000 // a minute's handling in 60 ms
		rep, err := handoffSim(t.Context(), pool, sc, log)
		if err != nil {
			t.Fatal(err)
		}
		c := rep.Concurrent
		t.Logf("%d assignments, %d abandoned (%d lost the race), %d routing passes (%d empty), wait p99 %.1f ms, %d database checks",
			c.Assignments, c.Abandoned, c.AbandonLost, rep.Queue.Routes, rep.Queue.EmptyRoutes, c.WaitMs.P99, rep.Invariants.Checks)
		if n := rep.Invariants.total(); n != 0 {
			t.Fatalf("%d invariant violations: %+v", n, rep.Invariants)
		}
		if c.Assignments+c.Abandoned != sc.Conversations {
			t.Errorf("%d assigned and %d abandoned of %d customers", c.Assignments, c.Abandoned, sc.Conversations)
		}
		if c.Assignments < sc.Conversations/4 || c.RouteErrors != 0 {
			t.Errorf("%d assignments, %d routing errors", c.Assignments, c.RouteErrors)
		}
	})
}

// TestHandoffBench runs kefu handoff bench at a small size: the drain assigns every waiting
// conversation with one router and with two, every streamed conversation is routed, also with
// more conversations waiting for a group nobody online can take than a routing pass considers
// (they must not starve the rest), and one pass's statements are explained.
func TestHandoffBench(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	pool := pgtest.Schema(t, handoff.Migrations())
	bc := handoffBenchConfig{agents: 20, maxChats: 2, waiting: 40, batch: 50, runs: 1, samples: 100, rate: 200, free: 0.25,
		backlog: 120, routers: []int{1, 2}, explain: true}
	rep, err := handoffBench(t.Context(), pool, bc, log, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Drain) != 2 || rep.Drain[0].AssignmentsPerSecond <= 0 || rep.Drain[1].AssignmentsPerSecond <= 0 {
		t.Errorf("drain = %+v", rep.Drain)
	}
	if n := rep.Notify; n.Unrouted != 0 || len(n.Each) != 1 || n.LatencyMs.Max <= 0 || n.Free < 1 {
		t.Errorf("%d of %d streamed conversations unrouted, latency %+v, %d slots free at the start", n.Unrouted, n.Samples, n.LatencyMs, n.Free)
	}
	if b := rep.Backlog; b == nil {
		t.Error("no backlog measurement")
	} else if b.Unrouted != 0 {
		t.Errorf("with %d conversations no one can take ahead of them, %d of %d streamed conversations were not routed", bc.backlog, b.Unrouted, b.Samples)
	}
	if len(rep.Explain) < 5 || len(rep.Notify.Explain) < 5 {
		t.Errorf("explained %d and %d statements of a routing pass, want its 6", len(rep.Explain), len(rep.Notify.Explain))
	}
	if !t.Failed() {
		t.Logf("drain %.0f/s (1 router), %.0f/s (2); notification p50 %.1f ms, p99 %.1f ms; with the backlog p99 %.1f ms",
			rep.Drain[0].AssignmentsPerSecond, rep.Drain[1].AssignmentsPerSecond, rep.Notify.LatencyMs.P50, rep.Notify.LatencyMs.P99, rep.Backlog.LatencyMs.P99)
	}
}
