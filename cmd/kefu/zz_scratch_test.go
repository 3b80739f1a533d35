package main

import (
	"fmt"
	"math"
	"testing"
	"time"
	"slices"

	"github.com/kefu-dev/kefu/handoff"
)

func TestZZSpread(t *testing.T) {
	for _, c := range []struct{ n int; rho float64; h time.Duration }{{5, 0.75, time.Minute}, {5, 0.6, time.Minute}, {10, 0.8, time.Minute}, {20, 0.85, 5 * time.Minute}} {
		base := SimConfig{Agents: c.n, MaxChats: 1, ArrivalRate: c.rho * float64(c.n) / c.h.Minutes(), Handle: c.h, HandleDist: "exponential",
			Conversations: 2000, Warmup: 100, SLA: 20 * time.Second, CheckEvery: math.MaxInt}
		m := handoff.MMN{Servers: c.n, Rate: base.ArrivalRate / 60, Handle: c.h}
		var mw, pw, sl []float64
		for seed := range uint64(1000) {
			sc := base
			sc.Seed = 1000 + seed
			convs := drawConversations(sc)
			simulate(t.Context(), sc, convs, newIdealQueue(sc, len(convs)), func(int, time.Duration) {})
			f := simFigures(sc, convs, &simRun{})
			mw, pw, sl = append(mw, f.MeanWait), append(pw, f.PWait), append(sl, f.SLAMet)
		}
		st := func(xs []float64, want float64) string {
			var s, ss float64
			for _, x := range xs { s += x }
			mean := s / float64(len(xs))
			for _, x := range xs { ss += (x - mean) * (x - mean) }
			sd := math.Sqrt(ss / float64(len(xs)-1))
			ys := slices.Clone(xs); slices.Sort(ys)
			return fmt.Sprintf("theory %.4f mean %.4f sd %.4f (rel %.2f) min z %.2f max z %.2f", want, mean, sd, sd/want, (ys[0]-want)/sd, (ys[len(ys)-1]-want)/sd)
		}
		t.Logf("N=%d rho=%.2f: meanwait %s", c.n, c.rho, st(mw, m.MeanWait()))
		t.Logf("   pwait %s", st(pw, m.PWait()))
		t.Logf("   sla %s", st(sl, m.WaitWithin(20*time.Second)))
	}
}
