package main

import (
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/kefu-dev/kefu/internal/pgtest"
	"github.com/kefu-dev/kefu/nlu"
)

// TestLoadgen runs kefu loadgen against the whole server over real sockets: 200 customers
// from two source addresses, held by two worker processes (the test binary re-executed, see
// TestMain), a tenth of them sending 20 messages a second for a few seconds. Every
// connection opens, every message gets the bot's reply, nothing fails, and the server's
// memory is read from its metrics.
func TestLoadgen(t *testing.T) {
	if testing.Short() {
		t.Skip("a load run")
	}
	m := startMain(t)
	o := &loadRun{n: 200, targets: []string{m.URL}, metrics: []string{m.URL + "/metrics"}, sources: 2, procs: 2,
		active: 0.1, rate: 20, poisson: true, ramp: 400, concurrency: 32, hold: time.Second, duration: 4 * time.Second,
		replyTimeout: 10 * time.Second, utterances: loadUtterances, log: slog.New(slog.NewTextHandler(t.Output(), nil)),
		childEnv: []string{"KEFU_TEST_RUN_MAIN=1", "KEFU_LOG_LEVEL=WARN"}}
	rep, err := o.run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	checkLoadReport(t, rep, 200)
	if rep.Server.Before.RSS == 0 || rep.Server.Idle.Goroutines <= rep.Server.Before.Goroutines {
		t.Errorf("server figures not read: %+v", rep.Server)
	}
	if rep.Generator.RSS == 0 {
		t.Errorf("the workers' memory was not reported: %+v", rep.Generator)
	}
}

// TestLoadgenInProcess runs the server and 2,000 customers in this process over in-memory
// connections, as `kefu loadgen -in-process` does for 100,000.
func TestLoadgenInProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("a load run")
	}
	_, url := pgtest.SchemaURL(t)
	cfg := Config{Addr: "127.0.0.1:0", DatabaseURL: url, ORTLib: nlu.FindRuntime(), ModelDir: "../../models/intent", FlowsDir: "../../dialog/flows",
		EncoderDir: "../../models/encoder", KBAnswerability: "../../models/answerability", KBFallback: "en",
		Demo: true, KBThreshold: 0.6, EscalateAfter: 2, RouteInterval: 200 * time.Millisecond, DemoPassword: "demo-password"}
	o := &loadRun{n: 2000, sources: 4, active: 0.05, rate: 50, poisson: true, ramp: 2000, concurrency: 64,
		hold: time.Second, duration: 4 * time.Second, replyTimeout: 10 * time.Second, utterances: loadUtterances,
		log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))}
	rep, err := o.runInProcess(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkLoadReport(t, rep, 2000)
	if rep.Mode != "in-process" || rep.Server.Idle.RSS == 0 || rep.Server.Idle.Goroutines < 2000 {
		t.Errorf("process figures: %+v", rep.Server)
	}
}

func checkLoadReport(t *testing.T, rep LoadReport, n int) {
	t.Helper()
	t.Logf("connections %+v", rep.Connections)
	t.Logf("messages %+v, reply ms %+v", rep.Messages, rep.ReplyMs)
	t.Logf("server %+v, generator %+v", rep.Server, rep.Generator)
	c := rep.Connections
	if c.Established != int64(n) || c.Failed != 0 || c.OpenAtEnd != int64(n) {
		t.Errorf("connections: %d established, %d failed, %d open at the end; want all %d", c.Established, c.Failed, c.OpenAtEnd, n)
	}
	msgs := rep.Messages
	if msgs.Sent < 10 || msgs.Replied != msgs.Sent || msgs.Skipped != 0 {
		t.Errorf("messages: %d sent, %d replied, %d skipped", msgs.Sent, msgs.Replied, msgs.Skipped)
	}
	if rep.ReplyMs.Count != uint64(msgs.Replied) || rep.ReplyMs.P50 <= 0 || rep.ReplyMs.P99 < rep.ReplyMs.P50 || rep.ReplyMs.Max < rep.ReplyMs.P99 {
		t.Errorf("reply latency %+v", rep.ReplyMs)
	}
	if len(rep.Errors) > 0 {
		t.Errorf("errors: %v", rep.Errors)
	}
}

// TestLoadHist: percentiles from the log-scale histogram are within 2% of the exact ones,
// and snapshots from several workers add up.
func TestLoadHist(t *testing.T) {
	var a, b loadHist
	a.init()
	b.init()
	for i := 1; i <= 1000; i++ {
		h := &a
		if i%2 == 0 {
			h = &b
		}
		h.record(time.Duration(i) * time.Millisecond)
	}
	s := a.snapshot()
	s.add(b.snapshot())
	for _, c := range []struct{ q, want float64 }{{0.5, 500}, {0.99, 990}, {0.999, 999}, {1, 1000}} {
		if got := s.quantile(c.q); math.Abs(got-c.want)/c.want > 0.02 {
			t.Errorf("p%g = %g ms, want %g", c.q*100, got, c.want)
		}
	}
	if s.count() != 1000 {
		t.Errorf("count %d", s.count())
	}
}
