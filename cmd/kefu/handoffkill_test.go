package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kefu-dev/kefu/internal/pgtest"
	"github.com/kefu-dev/kefu/nlu"
)

// TestHandoffSurvivesKill: customers ask for a person while the agent is online; the server
// is killed with SIGKILL in the middle of it and started again. The queue and the sessions
// agree (a conversation is with an agent in both or waiting in both), no agent is over
// capacity, every acknowledged request for a person is there, and after the restart the
// agent gets exactly what the database says they hold and the rest is routed as they close.
func TestHandoffSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server twice")
	}
	pool, url := pgtest.SchemaURL(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	base := "http://" + addr
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "serve", "-addr", addr, "-database-url", url, "-onnxruntime-lib", nlu.FindRuntime(),
			"-model", "../../models/intent", "-flows", "../../dialog/flows", "-encoder-model", "../../models/encoder",
			"-kb-answerability", "../../models/answerability", "-route-interval", "200ms")
		cmd.Env = append(os.Environ(), "KEFU_TEST_RUN_MAIN=1", "KEFU_LOG_LEVEL=ERROR", "KEFU_DEMO_PASSWORD=demo-password")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if !waitReady(base, 90*time.Second) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("the server did not become ready in 90 s")
		}
		return cmd
	}
	server := start()
	t.Cleanup(func() { server.Process.Kill(); server.Wait() })

	code, body := postJSON(t, base+"/api/agent/login", "", map[string]string{"email": DemoAgentEmail, "password": "demo-password"})
	if code != http.StatusOK {
		t.Fatalf("login = %d %v", code, body)
	}
	token := body["token"].(string)
	agent := rawDial(t, base+"/ws/agent")
	agent.send(map[string]any{"type": "hello", "token": token})
	agent.expect(t, "welcome", func(f map[string]any) bool { return f["type"] == "welcome" })

	// Twelve customers ask for a person at once; the demo agent takes five.
	const customers = 12
	var mu sync.Mutex
	acked := map[int64]bool{}
	type sess struct {
		id  int64
		tok string
	}
	var sessions []sess
	for range customers {
		id, tok := newSession(t, base)
		sessions = append(sessions, sess{id, tok})
	}
	var wg sync.WaitGroup
	for i, s := range sessions {
		id, tok := s.id, s.tok
		wg.Go(func() {
			c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/ws/customer", nil)
			if err != nil {
				return
			}
			defer c.Close()
			_ = c.WriteJSON(map[string]any{"type": "hello", "session_id": id, "token": tok})
			_ = c.WriteJSON(map[string]any{"type": "message", "client_id": fmt.Sprint("c", i), "text": "转人工"})
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			for {
				var f map[string]any
				if err := c.ReadJSON(&f); err != nil {
					return // killed
				}
				if f["type"] == "ack" {
					mu.Lock()
					acked[id] = true
					mu.Unlock()
				}
			}
		})
	}
	// Kill once some requests are in: assignments are being made right then.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		_ = pool.QueryRow(t.Context(), "SELECT count(*) FROM handoff_request").Scan(&n)
		if n >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := server.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	server.Wait() //nolint:errcheck // killed
	wg.Wait()
	consistent(t, pool, "after the kill")
	var requests int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM handoff_request WHERE session_id = ANY ($1)", keys(acked)).Scan(&requests); err != nil {
		t.Fatal(err)
	}
	if requests != len(acked) {
		t.Fatalf("%d of %d acknowledged requests for a person are in the queue", requests, len(acked))
	}
	t.Logf("killed with %d requests acknowledged", len(acked))

	server = start()
	agent = rawDial(t, base+"/ws/agent")
	agent.send(map[string]any{"type": "hello", "token": token})
	welcome := agent.expect(t, "welcome", func(f map[string]any) bool { return f["type"] == "welcome" })
	held := map[int64]bool{}
	for _, a := range welcome["assignments"].([]any) {
		held[int64(a.(map[string]any)["assignment"].(map[string]any)["session_id"].(float64))] = true
	}
	var inDB int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM handoff_request WHERE state = 'assigned'").Scan(&inDB); err != nil {
		t.Fatal(err)
	}
	if len(held) != inDB {
		t.Fatalf("the console got %d conversations, the database says the agent holds %d", len(held), inDB)
	}
	// Offers the agent could not accept while the server was down have lapsed, which made them
	// away (as on a slow machine); back at the desk they say they are online, as the console
	// lets them, and the lapsed conversations come back to them: nobody else is there.
	agent.send(map[string]any{"type": "presence", "status": "online"})
	// The agent closes what they hold; the rest comes to them.
	var total int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM handoff_request").Scan(&total); err != nil {
		t.Fatal(err)
	}
	closed := map[int64]bool{}
	for len(closed) < total {
		for id := range held {
			if !closed[id] {
				agent.send(map[string]any{"type": "close", "session_id": id, "disposition": "resolved"})
				closed[id] = true
			}
		}
		if len(closed) == total {
			break
		}
		f := agent.expect(t, "the next assignment", func(f map[string]any) bool { return f["type"] == "assigned" })
		held[int64(f["assignment"].(map[string]any)["session_id"].(float64))] = true
	}
	agent.expect(t, "the last close", func(f map[string]any) bool { return f["type"] == "closed" && len(closed) == total })
	time.Sleep(300 * time.Millisecond)
	consistent(t, pool, "after the restart")
	var open int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM handoff_request WHERE state IN ('queued', 'assigned')").Scan(&open); err != nil || open != 0 {
		t.Fatalf("%d requests still open (%v)", open, err)
	}
}

func keys(m map[int64]bool) []int64 {
	out := make([]int64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// consistent checks, in one snapshot, that the queue and the sessions agree and capacity holds.
func consistent(t *testing.T, pool *pgxpool.Pool, when string) {
	t.Helper()
	var disagree, orphans, over, miscounted int
	err := pool.QueryRow(t.Context(), `
WITH held AS (SELECT agent_id, count(*) AS n FROM handoff_request WHERE state = 'assigned' GROUP BY agent_id)
SELECT
  (SELECT count(*) FROM handoff_request r JOIN dialog_session s ON s.id = r.session_id
   WHERE r.state IN ('queued', 'assigned')
     AND NOT ((r.state = 'queued' AND s.state = 'queued') OR (r.state = 'assigned' AND s.state = 'agent' AND s.agent_id = r.agent_id))),
  (SELECT count(*) FROM dialog_session s WHERE s.state IN ('queued', 'agent')
     AND NOT EXISTS (SELECT 1 FROM handoff_request r WHERE r.session_id = s.id AND r.state IN ('queued', 'assigned'))),
  (SELECT count(*) FROM handoff_agent a JOIN held h ON h.agent_id = a.id WHERE h.n > a.max_chats),
  (SELECT count(*) FROM handoff_agent a LEFT JOIN held h ON h.agent_id = a.id WHERE a.active_chats <> coalesce(h.n, 0))`).
		Scan(&disagree, &orphans, &over, &miscounted)
	if err != nil {
		t.Fatal(err)
	}
	if disagree+orphans+over+miscounted > 0 {
		t.Fatalf("%s: %d requests whose session disagrees, %d sessions waiting or with an agent without a request, %d agents over capacity, %d agents miscounted",
			when, disagree, orphans, over, miscounted)
	}
}

type rawWS struct {
	conn   *websocket.Conn
	frames chan map[string]any
}

func rawDial(t *testing.T, url string) *rawWS {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(url, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &rawWS{conn: c, frames: make(chan map[string]any, 256)}
	go func() {
		defer close(r.frames)
		for {
			var f map[string]any
			if err := c.ReadJSON(&f); err != nil {
				return
			}
			r.frames <- f
		}
	}()
	t.Cleanup(func() { c.Close() })
	return r
}

func (r *rawWS) send(v any) { _ = r.conn.WriteJSON(v) }

func (r *rawWS) expect(t *testing.T, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case f, ok := <-r.frames:
			if !ok {
				t.Fatalf("connection closed while waiting for %s", what)
			}
			if match(f) {
				return f
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
