package handoff_test

import (
	"math"
	"testing"
	"time"

	"github.com/kefu-dev/kefu/handoff"
)

// erlangCDirect is Erlang C from its defining sums, in logarithms (lgamma for k!), as a check
// on the recursion that does not share its arithmetic.
func erlangCDirect(n int, a float64) float64 {
	logTerm := func(k int) float64 { lg, _ := math.Lgamma(float64(k) + 1); return float64(k)*math.Log(a) - lg }
	peak := logTerm(n) + math.Log(float64(n)/(float64(n)-a))
	for k := range n {
		peak = max(peak, logTerm(k))
	}
	var below float64
	for k := range n {
		below += math.Exp(logTerm(k) - peak)
	}
	top := math.Exp(logTerm(n) + math.Log(float64(n)/(float64(n)-a)) - peak)
	return top / (below + top)
}

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

func TestErlangB(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n    int
		a    float64
		want float64
	}{
		{0, 3, 1},
		{1, 1, 0.5},
		{2, 1, 0.2},                 // (1/2) / (1 + 1 + 1/2)
		{5, 3, 0.1100543},           // 5 circuits, 3 erlangs: 11% lost (exact rational arithmetic)
		{10, 5, 0.0183846},          //
		{30, 20, 0.00845750},        //
		{100, 80, 0.00399203},       //
		{1000, 950, 0.00364929},     // no overflow at a thousand servers
		{20, 0, 0},                  //
		{3, 1e-9, 1.6666666667e-28}, // a³/3! for tiny a
	}
	for _, tt := range tests {
		got := handoff.ErlangB(tt.n, tt.a)
		tol := 1e-5 * max(tt.want, 1e-22)
		if !near(got, tt.want, tol) {
			t.Errorf("ErlangB(%d, %g) = %.6g, want %.6g", tt.n, tt.a, got, tt.want)
		}
	}
}

func TestErlangC(t *testing.T) {
	t.Parallel()
	// The textbook call-centre example: 100 calls in half an hour with a 3-minute handling
	// time is 10 erlangs; the probability of waiting, the average speed of answer and the
	// service level at 20 seconds for 11 to 15 agents (the usual tables round these; the
	// figures here were computed in exact rational arithmetic).
	tests := []struct {
		n             int
		pWait, asa, s float64
	}{
		{11, 0.682118, 122.781, 0.389614},
		{12, 0.449388, 40.445, 0.640158},
		{13, 0.285270, 17.116, 0.795595},
		{14, 0.174132, 7.836, 0.888350},
		{15, 0.102042, 3.674, 0.941453},
	}
	for _, tt := range tests {
		m := handoff.MMN{Servers: tt.n, Rate: 100.0 / 1800, Handle: 3 * time.Minute}
		if got := m.PWait(); !near(got, tt.pWait, 1e-6) {
			t.Errorf("%d agents: PWait = %.6f, want %.6f", tt.n, got, tt.pWait)
		}
		if got := m.MeanWait(); !near(got, tt.asa, 1e-3) {
			t.Errorf("%d agents: MeanWait = %.3f s, want %.3f", tt.n, got, tt.asa)
		}
		if got := m.WaitWithin(20 * time.Second); !near(got, tt.s, 1e-6) {
			t.Errorf("%d agents: WaitWithin(20s) = %.6f, want %.6f", tt.n, got, tt.s)
		}
	}
	// One server: the probability of waiting is the utilisation, the wait ρ/(μ−λ).
	mm1 := handoff.MMN{Servers: 1, Rate: 0.8, Handle: time.Second}
	if got := mm1.PWait(); !near(got, 0.8, 1e-12) {
		t.Errorf("M/M/1 at 0.8: PWait = %v, want 0.8", got)
	}
	if got := mm1.MeanWait(); !near(got, 4, 1e-9) {
		t.Errorf("M/M/1 at 0.8: MeanWait = %v s, want 4", got)
	}
	if got := handoff.ErlangC(2, 1); !near(got, 1.0/3, 1e-12) {
		t.Errorf("ErlangC(2, 1) = %v, want 1/3", got)
	}
	// Against the defining sums, from a few servers to a thousand at high load.
	for _, c := range []struct {
		n int
		a float64
	}{{3, 2.5}, {20, 17}, {50, 30}, {200, 190}, {500, 499}, {1000, 950}, {5000, 4900}} {
		got, want := handoff.ErlangC(c.n, c.a), erlangCDirect(c.n, c.a)
		if !near(got, want, 1e-9*max(1, want)) || got < 0 || got > 1 {
			t.Errorf("ErlangC(%d, %g) = %.12g, the sums give %.12g", c.n, c.a, got, want)
		}
	}
	// Past capacity everyone waits, for ever.
	over := handoff.MMN{Servers: 10, Rate: 1, Handle: 10 * time.Second}
	if over.Stable() || over.PWait() != 1 || !math.IsInf(over.MeanWait(), 1) || over.WaitWithin(time.Hour) != 0 {
		t.Errorf("a queue at 100%% load: stable %v, PWait %v, MeanWait %v", over.Stable(), over.PWait(), over.MeanWait())
	}
}

func TestWaitQuantile(t *testing.T) {
	t.Parallel()
	m := handoff.MMN{Servers: 20, Rate: 3.4 / 60, Handle: 5 * time.Minute} // 85% utilisation
	c := m.PWait()                                                         // 0.385
	if q := m.WaitQuantile(1 - c); q != 0 {
		t.Errorf("the quantile at the share served at once = %v, want 0", q)
	}
	for _, p := range []float64{0.7, 0.9, 0.99} {
		q := m.WaitQuantile(p)
		if got := m.WaitWithin(time.Duration(q * float64(time.Second))); !near(got, p, 1e-6) {
			t.Errorf("WaitWithin(WaitQuantile(%v)) = %v", p, got)
		}
	}
}

func TestErlangA(t *testing.T) {
	t.Parallel()
	// With patience far longer than any wait, Erlang A is Erlang C.
	m := handoff.MMN{Servers: 20, Rate: 3.4 / 60, Handle: 5 * time.Minute}
	a := handoff.ErlangA{MMN: m, Patience: 1e6 * time.Hour}.Solve()
	if !near(a.PWait, m.PWait(), 1e-6) || !near(a.MeanQueue, m.MeanWait(), 1e-3) || a.PAbandon > 1e-6 {
		t.Errorf("Erlang A with endless patience = %+v, Erlang C gives PWait %v, MeanWait %v", a, m.PWait(), m.MeanWait())
	}
	if z := (handoff.ErlangA{MMN: m}).Solve(); z.PWait != m.PWait() || z.MeanQueue != m.MeanWait() {
		t.Errorf("Erlang A without patience = %+v, want Erlang C", z)
	}
	// With patience equal to the handling time every customer leaves at rate μ, waiting or
	// served, so the number present is Poisson(A) (M/M/∞): P(wait) = P(K ≥ N), and the mean
	// queue E[(K−N)⁺]. At 120% load the queue still has a steady state.
	for _, c := range []struct {
		n    int
		load float64
	}{{5, 3}, {20, 24}, {300, 290}} {
		mm := handoff.MMN{Servers: c.n, Rate: c.load / 60, Handle: time.Minute}
		got := handoff.ErlangA{MMN: mm, Patience: time.Minute}.Solve()
		var pWait, lq float64
		for k := c.n; k < c.n+2000; k++ {
			lg, _ := math.Lgamma(float64(k) + 1)
			p := math.Exp(float64(k)*math.Log(c.load) - c.load - lg)
			pWait += p
			lq += float64(k-c.n) * p
		}
		if !near(got.PWait, pWait, 1e-9) || !near(got.MeanLen, lq, 1e-7*max(1, lq)) {
			t.Errorf("N=%d, A=%g, patience = handling: %+v, Poisson gives PWait %v, Lq %v", c.n, c.load, got, pWait, lq)
		}
		if want := lq / (c.load / 60) / 60; !near(got.PAbandon, want, 1e-9) {
			t.Errorf("N=%d, A=%g: PAbandon = %v, want θ·Lq/λ = %v", c.n, c.load, got.PAbandon, want)
		}
	}
}
