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
	// Five agents at 75% utilisation: Erlang C predicts a mean wait of 26.9 s.
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

		// The statistical check. How far a mean of 1,900 waits strays from Erlang C is
		// measured, not guessed: the ideal queue (which the real one matched exactly) is run
		// with 200 other seeds, and the real queue's mean must lie within four of their
		// standard deviations of the prediction (a correct queue fails about once in 15,000
		// seeds). A queue that left a free agent idle while a customer waited, or that gave
		// an agent two customers, would be off by far more.
		theory := handoff.MMN{Servers: base.Agents, Rate: base.ArrivalRate / 60, Handle: base.Handle}.MeanWait()
		const reps = 200
		var sum, sumSq float64
		for seed := range uint64(reps) {
			sc := base
			sc.Seed = 1000 + seed
			convs := drawConversations(sc)
			if _, err := simulate(t.Context(), sc, convs, newIdealQueue(sc, len(convs)), func(int, time.Duration) {}); err != nil {
				t.Fatal(err)
			}
			m := simFigures(sc, convs, &simRun{}).MeanWait
			sum += m
			sumSq += m * m
		}
		mean := sum / reps
		sd := math.Sqrt((sumSq - reps*mean*mean) / (reps - 1))
		got := rep.Simulated.MeanWait
		t.Logf("mean wait %.2f s (95%% CI ± %.2f), Erlang C %.2f s; the ideal queue over %d seeds %.2f s, sd %.2f s",
			got, rep.Simulated.MeanWaitCI95, theory, reps, mean, sd)
		if math.Abs(got-theory) > 4*sd {
			t.Errorf("mean wait %.2f s, Erlang C %.2f s: more than 4 sd (%.2f s) apart", got, theory, sd)
		}
		// And the simulation itself, averaged over the 200 seeds (380,000 waits), is
		// within four standard errors of the theory.
		if se := sd / math.Sqrt(reps); math.Abs(mean-theory) > 4*se {
			t.Errorf("the ideal queue's mean wait over %d seeds is %.2f s, Erlang C %.2f s: more than 4 standard errors (%.2f s) apart",
				reps, mean, theory, se)
		}
		if p := rep.Theory.PWait; math.Abs(rep.Simulated.PWait-p) > 0.1 {
			t.Errorf("P(wait) %.3f, Erlang C %.3f", rep.Simulated.PWait, p)
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
		sc.TimeScale = 2000 // a minute's handling in 30 ms
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
		if c.Assignments < sc.Conversations/2 || c.RouteErrors != 0 {
			t.Errorf("%d assignments, %d routing errors", c.Assignments, c.RouteErrors)
		}
	})
}
