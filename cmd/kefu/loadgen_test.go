package main

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kefu-dev/kefu/internal/memnet"
	"github.com/kefu-dev/kefu/internal/pgtest"
	"github.com/kefu-dev/kefu/nlu"
)

// TestLoadgen runs kefu loadgen against the whole server over real sockets: 200 customers
// from two source addresses, held by two worker processes (the test binary re-executed, see
// TestMain), a tenth of them sending 20 messages a second in all for a few seconds. Every
// connection opens, every message gets the bot's reply, nothing fails, and the server's
// memory is read from its metrics. Two agents answer the fifth of the senders who ask for a
// person.
func TestLoadgen(t *testing.T) {
	if testing.Short() {
		t.Skip("a load run")
	}
	m := startMain(t)
	o := &loadRun{n: 200, targets: []string{m.URL}, metrics: []string{m.URL + "/metrics"}, sources: 2, procs: 2,
		active: 0.1, rate: 20, poisson: true, ramp: 400, concurrency: 32, hold: time.Second, duration: 4 * time.Second,
		replyTimeout: 10 * time.Second, utterances: loadUtterances, log: slog.New(slog.NewTextHandler(t.Output(), nil)),
		childEnv: []string{"KEFU_TEST_RUN_MAIN=1", "KEFU_LOG_LEVEL=WARN"}, out: t.Output(),
		agents: 2, handoff: 0.2, agentChats: 10, agentTargets: []string{m.URL}, databaseURL: m.Config.DatabaseURL}
	rep, err := o.run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	checkLoadReport(t, rep, 200)
	checkAgents(t, rep, 2)
	// The agents closed what they held: a second run against this database finds them free.
	var held int
	if err := m.pool.QueryRow(t.Context(), `SELECT coalesce(sum(active_chats), 0) FROM handoff_agent WHERE email LIKE 'loadgen-agent-%'`).Scan(&held); err != nil {
		t.Fatal(err)
	}
	if held != 0 {
		t.Errorf("the load agents still hold %d conversations after the run", held)
	}
	if rep.Server.Before.RSS == 0 || rep.Server.Idle.Goroutines <= rep.Server.Before.Goroutines {
		t.Errorf("server figures not read: %+v", rep.Server)
	}
	if rep.Generator == nil || rep.Generator.RSS == 0 {
		t.Errorf("the workers' memory was not reported: %+v", rep.Generator)
	}
}

// TestLoadgenInProcess runs the server and 2,000 customers in this process over in-memory
// connections, as `kefu loadgen -in-process` does for 100,000; three agents answer the
// customers who ask for a person.
func TestLoadgenInProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("a load run")
	}
	_, url := pgtest.SchemaURL(t)
	cfg := Config{Addr: "127.0.0.1:0", DatabaseURL: url, ORTLib: nlu.FindRuntime(), ModelDir: "../../models/intent", FlowsDir: "../../dialog/flows",
		EncoderDir: "../../models/encoder", KBAnswerability: "../../models/answerability", KBFallback: "en",
		Demo: true, KBThreshold: 0.6, EscalateAfter: 2, RouteInterval: 200 * time.Millisecond, DemoPassword: "demo-password"}
	o := &loadRun{n: 2000, sources: 4, active: 0.05, rate: 50, poisson: true, ramp: 2000, concurrency: 64,
		hold: time.Second, duration: 5 * time.Second, replyTimeout: 10 * time.Second, utterances: loadUtterances,
		log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})), out: t.Output(),
		agents: 3, handoff: 0.3, agentChats: 10}
	rep, err := o.runInProcess(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkLoadReport(t, rep, 2000)
	checkAgents(t, rep, 3)
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
	if rep.ReplyMs.Count != uint64(msgs.Replied-msgs.AgentReply) || rep.ReplyMs.P50 <= 0 || rep.ReplyMs.P99 < rep.ReplyMs.P50 || rep.ReplyMs.Max < rep.ReplyMs.P99 {
		t.Errorf("reply latency %+v", rep.ReplyMs)
	}
	if len(rep.Errors) > 0 {
		t.Errorf("errors: %v", rep.Errors)
	}
}

// checkAgents: every agent's console opened, customers who asked for a person were offered
// to them, and each message a customer sent to a person got that person's reply.
func checkAgents(t *testing.T, rep LoadReport, agents int) {
	t.Helper()
	t.Logf("agents %+v, their replies ms %+v", rep.Agents, rep.AgentMs)
	a := rep.Agents
	if a == nil || a.Online != int64(agents) || a.Offered == 0 || len(a.Errors) > 0 {
		t.Fatalf("agents: %+v", a)
	}
	msgs := rep.Messages
	if msgs.ToAgents == 0 || msgs.AgentReply != msgs.ToAgents || a.Replies < msgs.ToAgents {
		t.Errorf("%d messages to agents, %d answered by them; the agents sent %d replies", msgs.ToAgents, msgs.AgentReply, a.Replies)
	}
	if rep.AgentMs == nil || rep.AgentMs.Count != uint64(msgs.AgentReply) || rep.AgentMs.P50 <= 0 {
		t.Errorf("agents' reply latency %+v", rep.AgentMs)
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

// TestMemWS: the in-memory client reads what a gorilla/websocket server writes (small,
// fragmented and compressed messages, pings), writes frames the server reads, and reports
// the server's close code.
func TestMemWS(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("compress=%v", compress), func(t *testing.T) {
			ln, err := memnet.Listen("127.0.0.1:80")
			if err != nil {
				t.Fatal(err)
			}
			big := strings.Repeat("回复 reply ", 2000) // more than a write buffer: several frames
			pongs := make(chan string, 1)
			up := websocket.Upgrader{EnableCompression: true, WriteBufferSize: 1024}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ws, err := up.Upgrade(w, r, nil)
				if err != nil {
					return
				}
				defer ws.Close()
				ponged := make(chan struct{})
				ws.SetPongHandler(func(s string) error { pongs <- s; close(ponged); return nil })
				_, got, err := ws.ReadMessage()
				if err != nil {
					return
				}
				_ = ws.WriteMessage(websocket.TextMessage, append([]byte("echo "), got...))
				_ = ws.WriteMessage(websocket.TextMessage, []byte(big))
				_ = ws.WriteControl(websocket.PingMessage, []byte("p1"), time.Now().Add(time.Second))
				go func() {
					for {
						if _, _, err := ws.ReadMessage(); err != nil { // the pong is handled within
							return
						}
					}
				}()
				<-ponged
				_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4008, "too slow"), time.Now().Add(time.Second))
				time.Sleep(100 * time.Millisecond)
			})}
			go srv.Serve(ln)
			defer srv.Close()

			got := make(chan string, 4)
			ended := make(chan error, 1)
			nc, err := ln.Dial(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			m := &memWS{conn: nc.(*memnet.Conn), upgraded: make(chan error, 1),
				onFrame: func(b []byte) { got <- string(b) }, onEnd: func(err error) { ended <- err }}
			m.conn.Deliver(m.feed, m.peerClosed)
			if err := m.handshake(t.Context(), "/ws", compress); err != nil {
				t.Fatal(err)
			}
			if err := m.write([]byte("你好")); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"echo 你好", big} {
				select {
				case s := <-got:
					if s != want {
						t.Fatalf("got %d bytes %.40q…, want %d bytes %.40q…", len(s), s, len(want), want)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("no message")
				}
			}
			select {
			case p := <-pongs:
				if p != "p1" {
					t.Fatalf("pong %q", p)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no pong")
			}
			select {
			case err := <-ended:
				var ce *websocket.CloseError
				if !errors.As(err, &ce) || ce.Code != 4008 || ce.Text != "too slow" {
					t.Fatalf("ended with %v, want the server's close 4008", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the end of the connection was not reported")
			}
		})
	}
}
