package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kefu-dev/kefu/handoff"
	"github.com/kefu-dev/kefu/internal/pgtest"
)

// supClock is a settable clock for the queue and the desk.
type supClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *supClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *supClock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

type supBundle struct {
	t      *testing.T
	url    string
	pool   *pgxpool.Pool
	server *Server
	queue  *handoff.Queue
	agents *handoff.Agents
	desk   *handoff.Desk
	clock  *supClock
}

func newSupBundle(t *testing.T, start time.Time) *supBundle {
	t.Helper()
	pool := pgtest.Schema(t, handoff.Migrations())
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	b := &supBundle{t: t, pool: pool, clock: &supClock{t: start}, queue: handoff.NewQueue(pool, log),
		agents: handoff.NewAgents(pool, log), desk: handoff.NewDesk(pool)}
	b.queue.Now, b.desk.Now = b.clock.Now, b.clock.Now
	b.server = New(Deps{Pool: pool, Queue: b.queue, Agents: b.agents, Desk: b.desk, Log: log})
	b.server.Metrics.desk.live.ttl, b.server.Metrics.desk.report.ttl = 0, 0 // every scrape reads the clock's present
	ts := httptest.NewServer(b.server.Handler())
	t.Cleanup(ts.Close)
	b.url = ts.URL
	return b
}

// account creates an account and logs it in through the API.
func (b *supBundle) account(email, name string, maxChats int, roles ...string) (int64, string) {
	b.t.Helper()
	ag, err := b.agents.Create(b.t.Context(), handoff.Agent{Email: email, Name: name, MaxChats: maxChats, Roles: roles}, "password123")
	if err != nil {
		b.t.Fatal(err)
	}
	code, body := b.call(http.MethodPost, "/api/login", "", map[string]string{"email": email, "password": "password123"}, nil)
	if code != http.StatusOK {
		b.t.Fatalf("login %s = %d %s", email, code, body)
	}
	var out struct{ Token string }
	if err := json.Unmarshal(body, &out); err != nil {
		b.t.Fatal(err)
	}
	return ag.ID, out.Token
}

// call sends a request (body: nil, a string sent as is, or a value sent as JSON) and decodes
// a 2xx answer into out when out is not nil.
func (b *supBundle) call(method, path, token string, body, out any) (int, []byte) {
	b.t.Helper()
	var r io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(v)
	default:
		buf, _ := json.Marshal(v)
		r = bytes.NewReader(buf)
	}
	req, _ := http.NewRequestWithContext(b.t.Context(), method, b.url+path, r)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode/100 == 2 {
		if err := json.Unmarshal(data, out); err != nil {
			b.t.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
	return res.StatusCode, data
}

// at sets the clock to start+d.
func (b *supBundle) at(start time.Time, d time.Duration) { b.clock.Set(start.Add(d)) }

func (b *supBundle) tx(f func(tx pgx.Tx) error) {
	b.t.Helper()
	if err := pgx.BeginFunc(b.t.Context(), b.pool, f); err != nil {
		b.t.Fatal(err)
	}
}

func (b *supBundle) enqueue(session int64, group string) {
	b.t.Helper()
	b.tx(func(tx pgx.Tx) error {
		ok, err := b.queue.Enqueue(b.t.Context(), tx, handoff.Request{SessionID: session, Language: "zh", Reason: "customer_asked", Group: group})
		if err == nil && !ok {
			err = fmt.Errorf("session %d already queued", session)
		}
		return err
	})
}

// route runs one routing pass and checks who got what.
func (b *supBundle) route(want map[int64]int64) {
	b.t.Helper()
	as, err := b.queue.Route(b.t.Context())
	if err != nil {
		b.t.Fatal(err)
	}
	got := map[int64]int64{}
	for _, a := range as {
		got[a.SessionID] = a.AgentID
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		b.t.Fatalf("route = %v, want %v", got, want)
	}
}

func (b *supBundle) online(ids ...int64) {
	b.t.Helper()
	for _, id := range ids {
		if err := b.agents.SetStatus(b.t.Context(), id, handoff.Online); err != nil {
			b.t.Fatal(err)
		}
	}
}

func supNear(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

// TestSupervisorAPI runs a small day at the desk on a controlled clock through the handoff
// API and the supervisor's REST API, then checks who may see what, that bad input is refused
// and changes nothing, the live view, the report's figures to the second and the Prometheus
// endpoint.
func TestSupervisorAPI(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)
	b := newSupBundle(t, t0)
	ctx := t.Context()

	ann, annTok := b.account("ann@shop.cn", "Ann", 2)
	bob, _ := b.account("bob@shop.cn", "Bob", 2)
	cai, _ := b.account("cai@shop.cn", "Cai", 2)
	_, supTok := b.account("sue@shop.cn", "Sue", 0, handoff.RoleSupervisor)
	_, admTok := b.account("ada@shop.cn", "Ada", 0, handoff.RoleAdmin)
	_, edTok := b.account("eve@shop.cn", "Eve", 0, handoff.RoleEditor)

	t.Run("Auth", func(t *testing.T) {
		for _, tc := range []struct {
			name, method, path, token string
			body                      any
			want                      int
		}{
			{"no login", "GET", "/api/supervisor/live", "", nil, http.StatusUnauthorized},
			{"forged token", "GET", "/api/supervisor/live", "kefu-forged", nil, http.StatusUnauthorized},
			{"agent", "GET", "/api/supervisor/live", annTok, nil, http.StatusForbidden},
			{"editor", "GET", "/api/supervisor/report", edTok, nil, http.StatusForbidden},
			{"agent admin", "GET", "/api/admin/groups", annTok, nil, http.StatusForbidden},
			{"agent transfer", "POST", "/api/supervisor/transfer", annTok, map[string]any{"session_id": 1, "to_group": "x"}, http.StatusForbidden},
			{"no login canned", "PUT", "/api/admin/canned", "", map[string]any{"shortcut": "hi", "text": "hi"}, http.StatusUnauthorized},
			{"supervisor", "GET", "/api/supervisor/live", supTok, nil, http.StatusOK},
			{"admin", "GET", "/api/supervisor/live", admTok, nil, http.StatusOK},
			{"supervisor groups", "GET", "/api/admin/groups", supTok, nil, http.StatusOK},
			{"supervisor creates account", "POST", "/api/admin/agents", supTok,
				map[string]any{"email": "new@shop.cn", "password": "password123"}, http.StatusForbidden},
			{"metrics without login", "GET", "/metrics", "", nil, http.StatusOK},
		} {
			if code, body := b.call(tc.method, tc.path, tc.token, tc.body, nil); code != tc.want {
				t.Errorf("%s: %s %s = %d %s, want %d", tc.name, tc.method, tc.path, code, body, tc.want)
			}
		}
	})

	// The groups, through the API.
	for _, g := range []map[string]any{
		{"name": "Tech L2", "tier": 2, "sla_seconds": 120, "strategy": "round_robin", "members": []int64{cai}},
		{"name": "Sales L1", "tier": 1, "sla_seconds": 60, "members": []int64{ann, bob}, "overflow": "Tech L2"},
	} {
		if code, body := b.call("PUT", "/api/admin/groups", supTok, g, nil); code != http.StatusOK {
			t.Fatalf("PUT group %v = %d %s", g["name"], code, body)
		}
	}

	t.Run("BadInputChangesNothing", func(t *testing.T) {
		var before struct{ Groups []handoff.Group }
		b.call("GET", "/api/admin/groups", supTok, nil, &before)
		for _, tc := range []struct {
			name, method, path, token string
			body                      any
			want                      int
		}{
			{"tier 7", "PUT", "/api/admin/groups", supTok, map[string]any{"name": "Sales L1", "tier": 7}, 400},
			{"unknown overflow", "PUT", "/api/admin/groups", supTok, map[string]any{"name": "Sales L1", "overflow": "Nope"}, 400},
			{"overflow into itself", "PUT", "/api/admin/groups", supTok, map[string]any{"name": "Sales L1", "overflow": "Sales L1"}, 400},
			{"bad strategy", "PUT", "/api/admin/groups", supTok, map[string]any{"name": "Sales L1", "strategy": "random"}, 400},
			{"member not an agent", "PUT", "/api/admin/groups", supTok, map[string]any{"name": "Sales L1", "members": []int64{ann, 999999}}, 400},
			{"bad name", "PUT", "/api/admin/groups", supTok, map[string]any{"name": "<script>"}, 400},
			{"unknown field", "PUT", "/api/admin/groups", supTok, map[string]any{"name": "Sales L1", "sla": 5}, 400},
			{"malformed", "PUT", "/api/admin/groups", supTok, `{"name":`, 400},
			{"report bad from", "GET", "/api/supervisor/report?from=yesterday", supTok, nil, 400},
			{"report bad to", "GET", "/api/supervisor/report?to=2025-13-01", supTok, nil, 400},
			{"report from after to", "GET", "/api/supervisor/report?from=2025-06-05&to=2025-06-01", supTok, nil, 400},
			{"report empty range", "GET", "/api/supervisor/report?from=2025-06-02T09:00:00Z&to=2025-06-02T09:00:00Z", supTok, nil, 400},
			{"report too long", "GET", "/api/supervisor/report?from=2024-01-01&to=2025-06-01", supTok, nil, 400},
			{"short password", "POST", "/api/admin/agents", admTok, map[string]any{"email": "x@shop.cn", "password": "short"}, 400},
			{"unknown role", "POST", "/api/admin/agents", admTok, map[string]any{"email": "x@shop.cn", "password": "password123", "roles": []string{"root"}}, 400},
			{"too many chats", "POST", "/api/admin/agents", admTok, map[string]any{"email": "x@shop.cn", "password": "password123", "max_chats": 500}, 400},
			{"taken e-mail", "POST", "/api/admin/agents", admTok, map[string]any{"email": "ANN@shop.cn", "password": "password123"}, 409},
			{"bad shortcut", "PUT", "/api/admin/canned", supTok, map[string]any{"shortcut": "Hello World", "text": "hi"}, 400},
			{"empty canned", "PUT", "/api/admin/canned", supTok, map[string]any{"shortcut": "hi", "text": " "}, 400},
			{"tickets bad state", "GET", "/api/supervisor/tickets?state=pending", supTok, nil, 400},
			{"tickets bad limit", "GET", "/api/supervisor/tickets?limit=-1", supTok, nil, 400},
			{"close unknown ticket", "POST", "/api/supervisor/tickets/99999/close", supTok, nil, 404},
			{"close bad ticket id", "POST", "/api/supervisor/tickets/abc/close", supTok, nil, 400},
			{"transfer to both", "POST", "/api/supervisor/transfer", supTok, map[string]any{"session_id": 101, "to_agent": bob, "to_group": "Tech L2"}, 400},
			{"transfer without session", "POST", "/api/supervisor/transfer", supTok, map[string]any{"to_group": "Tech L2"}, 400},
			{"transfer unassigned", "POST", "/api/supervisor/transfer", supTok, map[string]any{"session_id": 424242, "to_group": "Tech L2"}, 404},
		} {
			code, body := b.call(tc.method, tc.path, tc.token, tc.body, nil)
			var e struct {
				Error struct{ Code, Message string }
			}
			_ = json.Unmarshal(body, &e)
			if code != tc.want || e.Error.Message == "" {
				t.Errorf("%s: %s %s = %d %s, want %d with a message", tc.name, tc.method, tc.path, code, body, tc.want)
			}
		}
		var after struct{ Groups []handoff.Group }
		b.call("GET", "/api/admin/groups", supTok, nil, &after)
		if fmt.Sprint(before) != fmt.Sprint(after) {
			t.Fatalf("refused changes changed the groups:\n%v\n%v", before, after)
		}
		if n, err := b.agents.Count(ctx); n != 6 || err != nil {
			t.Fatalf("%d accounts after refused creations (%v), want 6", n, err)
		}
	})

	// The day before the report: one escalation, abandoned, and a ticket.
	b.at(t0, -24*time.Hour)
	b.enqueue(100, "Sales L1")
	b.at(t0, -24*time.Hour+10*time.Second)
	b.tx(func(tx pgx.Tx) error { _, err := b.queue.Abandon(ctx, tx, 100); return err })
	if _, err := b.desk.LeaveMessage(ctx, handoff.Ticket{SessionID: 100, Body: "昨天的留言"}); err != nil {
		t.Fatal(err)
	}

	// The day of the report. Ann is online; Bob joins later; Cai takes Tech L2 the next day.
	b.online(ann)
	b.at(t0, 0)
	b.enqueue(101, "Sales L1")
	b.at(t0, 30*time.Second)
	b.route(map[int64]int64{101: ann}) // wait 30 s, within the SLA
	b.at(t0, 40*time.Second)
	if err := b.queue.Accept(ctx, ann, 101); err != nil {
		t.Fatal(err)
	}
	b.at(t0, 50*time.Second)
	b.tx(func(tx pgx.Tx) error { return b.queue.Responded(ctx, tx, ann, 101) }) // FRT 50 s
	b.at(t0, 60*time.Second)
	b.enqueue(102, "Sales L1")
	b.at(t0, 100*time.Second)
	b.enqueue(103, "Sales L1")

	t.Run("Live", func(t *testing.T) {
		b.at(t0, 125*time.Second)
		var l struct {
			handoff.Live
			Now time.Time
		}
		if code, body := b.call("GET", "/api/supervisor/live", supTok, nil, &l); code != http.StatusOK {
			t.Fatalf("live = %d %s", code, body)
		}
		if !l.Now.Equal(t0.Add(125 * time.Second)) {
			t.Errorf("live now = %v", l.Now)
		}
		groups := map[string]handoff.GroupLive{}
		for _, g := range l.Groups {
			groups[g.Name] = g
		}
		if g := groups["Sales L1"]; g.Waiting != 2 || g.LongestWait != 65 || g.Breached != 1 || g.SLASeconds != 60 || g.Online != 1 || g.Free != 1 {
			t.Errorf("Sales L1 live = %+v, want 2 waiting, longest 65 s, 1 breached, 1 online with 1 free slot", g)
		}
		if g := groups["Tech L2"]; g.Waiting != 0 || g.Online != 0 {
			t.Errorf("Tech L2 live = %+v", g)
		}
		if len(l.AtRisk) != 1 || l.AtRisk[0].SessionID != 102 || l.AtRisk[0].Group != "Sales L1" || l.AtRisk[0].Waited != 65 {
			t.Errorf("at risk = %+v, want session 102 (65 s of a 60 s SLA)", l.AtRisk)
		}
		agents := map[string]handoff.AgentLive{}
		for _, a := range l.Agents {
			agents[a.Name] = a
		}
		if a := agents["Ann"]; a.Status != handoff.Online || a.Active != 1 || a.Max != 2 || fmt.Sprint(a.Groups) != "[Sales L1]" {
			t.Errorf("Ann live = %+v", a)
		}
		if _, ok := agents["Sue"]; ok || len(agents) != 3 {
			t.Errorf("live agents = %v, want the three agents only", agents)
		}

		// The same, as Prometheus sees it.
		metrics := supScrape(t, b.url)
		for _, want := range []string{
			`kefu_stats_up{source="live"} 1`,
			`kefu_stats_up{source="report"} 1`,
			`kefu_handoff_queue_waiting{group="Sales L1"} 2`,
			`kefu_handoff_queue_waiting{group="Tech L2"} 0`,
			`kefu_handoff_queue_longest_wait_seconds{group="Sales L1"} 65`,
			`kefu_handoff_queue_breached{group="Sales L1"} 1`,
			`kefu_handoff_group_free_slots{group="Sales L1"} 1`,
			`kefu_handoff_agents{status="online"} 1`,
			`kefu_handoff_agents{status="offline"} 2`,
			`kefu_handoff_active_chats 1`,
			`kefu_handoff_free_slots 1`,
			// The last 24 hours at 09:02:05: 101 (assigned after 30 s, answered after 50 s), 102, 103.
			`kefu_handoff_last24h_escalated 3`,
			`kefu_handoff_last24h_wait_seconds 30`,
			`kefu_handoff_last24h_first_response_seconds 50`,
			`kefu_handoff_last24h_abandon_ratio 0`,
			`kefu_handoff_last24h_tickets 0`,
			`go_goroutines `,
			`process_cpu_seconds_total `,
		} {
			if !strings.Contains(metrics, "\n"+want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}
		for _, absent := range []string{"kefu_handoff_last24h_csat_score", "kefu_handoff_last24h_handle_seconds ", "kefu_bot_last24h_containment_ratio"} {
			if strings.Contains(metrics, "\n"+absent) {
				t.Errorf("/metrics shows %q without anything to measure", absent)
			}
		}
	})

	b.at(t0, 130*time.Second)
	b.tx(func(tx pgx.Tx) error { _, err := b.queue.Abandon(ctx, tx, 103); return err })
	b.at(t0, 150*time.Second)
	b.route(map[int64]int64{102: ann}) // wait 90 s, past the SLA
	b.at(t0, 170*time.Second)
	b.tx(func(tx pgx.Tx) error { return b.queue.Responded(ctx, tx, ann, 102) }) // FRT 110 s

	t.Run("Transfer", func(t *testing.T) {
		b.at(t0, 180*time.Second)
		if code, body := b.call("POST", "/api/supervisor/transfer", supTok, map[string]any{"session_id": 102, "to_agent": bob}, nil); code != http.StatusConflict {
			t.Errorf("transfer to an offline agent = %d %s, want 409", code, body)
		}
		if code, body := b.call("POST", "/api/supervisor/transfer", supTok, map[string]any{"session_id": 102, "to_group": "Nope"}, nil); code != http.StatusNotFound {
			t.Errorf("transfer to an unknown group = %d %s, want 404", code, body)
		}
		b.online(bob)
		b.at(t0, 200*time.Second)
		var a handoff.Assignment
		code, body := b.call("POST", "/api/supervisor/transfer", supTok, map[string]any{"session_id": 102, "to_agent": bob, "note": "账单问题"}, &a)
		if code != http.StatusOK || a.AgentID != bob || a.Transfers != 1 || a.Note != "账单问题" {
			t.Fatalf("supervisor transfer = %d %s", code, body)
		}
	})

	b.at(t0, 210*time.Second)
	b.tx(func(tx pgx.Tx) error { return b.queue.Responded(ctx, tx, bob, 102) })
	b.at(t0, 300*time.Second)
	ticket, err := b.desk.LeaveMessage(ctx, handoff.Ticket{SessionID: 105, Name: "Li", Email: "li@example.com", Body: "请回电"})
	if err != nil {
		t.Fatal(err)
	}
	b.at(t0, 350*time.Second)
	b.tx(func(tx pgx.Tx) error { _, err := b.queue.Close(ctx, tx, 101, "resolved"); return err }) // AHT 310 s
	b.at(t0, 400*time.Second)
	b.tx(func(tx pgx.Tx) error { _, err := b.queue.Close(ctx, tx, 102, "resolved"); return err }) // AHT 190 s
	b.at(t0, 405*time.Second)
	for session, score := range map[int64]int{101: 5, 102: 2} {
		if err := b.desk.RateService(ctx, session, score, ""); err != nil {
			t.Fatal(err)
		}
	}
	// The next day, Tech L2.
	t1 := t0.Add(24 * time.Hour)
	b.online(cai)
	b.at(t1, 0)
	b.enqueue(104, "Tech L2")
	b.at(t1, 20*time.Second)
	b.route(map[int64]int64{104: cai})
	b.at(t1, 100*time.Second)
	b.tx(func(tx pgx.Tx) error { _, err := b.queue.Close(ctx, tx, 104, "resolved"); return err }) // never accepted: AHT 80 s from the offer

	t.Run("Report", func(t *testing.T) {
		var r handoff.Report
		if code, body := b.call("GET", "/api/supervisor/report?from=2025-06-02&to=2025-06-03", supTok, nil, &r); code != http.StatusOK {
			t.Fatalf("report = %d %s", code, body)
		}
		if !r.From.Equal(t0.Truncate(24*time.Hour)) || !r.To.Equal(t0.Truncate(24*time.Hour).Add(48*time.Hour)) {
			t.Errorf("report range %v – %v, want 2025-06-02 and 2025-06-03 whole", r.From, r.To)
		}
		supCheckStats(t, "total", r.Total, handoff.Stats{Escalated: 4, Assigned: 3, Closed: 3, Abandoned: 1, Transferred: 1,
			AvgWait: 140.0 / 3, P90Wait: 78, AvgFRT: 80, AvgHandle: 580.0 / 3, SLAMet: 0.5, AbandonRate: 0.25, TransferRate: 1.0 / 3,
			CSATCount: 2, CSAT: 3.5, CSATShare: 0.5})
		if r.Tickets != 1 || r.Sessions != 0 || r.Containment != 0 {
			t.Errorf("tickets %d, sessions %d, containment %v; want 1, 0, 0", r.Tickets, r.Sessions, r.Containment)
		}
		byKey := func(list []handoff.Stats) map[string]handoff.Stats {
			m := map[string]handoff.Stats{}
			for _, s := range list {
				m[s.Key] = s
			}
			return m
		}
		groups := byKey(r.ByGroup)
		if len(groups) != 2 {
			t.Errorf("by group: %+v", r.ByGroup)
		}
		supCheckStats(t, "Sales L1", groups["Sales L1"], handoff.Stats{Escalated: 3, Assigned: 2, Closed: 2, Abandoned: 1, Transferred: 1,
			AvgWait: 60, P90Wait: 84, AvgFRT: 80, AvgHandle: 250, SLAMet: 1.0 / 3, AbandonRate: 1.0 / 3, TransferRate: 0.5,
			CSATCount: 2, CSAT: 3.5, CSATShare: 0.5})
		supCheckStats(t, "Tech L2", groups["Tech L2"], handoff.Stats{Escalated: 1, Assigned: 1, Closed: 1, AvgWait: 20, P90Wait: 20,
			AvgHandle: 80, SLAMet: 1})
		agents := byKey(r.ByAgent)
		if len(agents) != 4 || agents["Ann"].ID != ann || agents["Bob"].ID != bob || agents[""].Abandoned != 1 {
			t.Errorf("by agent: %+v", r.ByAgent)
		}
		supCheckStats(t, "Ann", agents["Ann"], handoff.Stats{Escalated: 1, Assigned: 1, Closed: 1, AvgWait: 30, P90Wait: 30, AvgFRT: 50,
			AvgHandle: 310, SLAMet: 1, CSATCount: 1, CSAT: 5, CSATShare: 1})
		// Bob holds 102 since the transfer; its wait and first response were Ann's.
		supCheckStats(t, "Bob", agents["Bob"], handoff.Stats{Escalated: 1, Assigned: 1, Closed: 1, Transferred: 1, AvgWait: 90, P90Wait: 90,
			AvgFRT: 110, AvgHandle: 190, TransferRate: 1, CSATCount: 1, CSAT: 2})
		days := byKey(r.ByDay)
		if len(days) != 2 || days["2025-06-02"].Escalated != 3 || days["2025-06-03"].Escalated != 1 {
			t.Errorf("by day: %+v", r.ByDay)
		}

		// The default is the last 7 days: the day before counts too.
		if code, _ := b.call("GET", "/api/supervisor/report", supTok, nil, &r); code != http.StatusOK || r.Total.Escalated != 5 || r.Tickets != 2 {
			t.Errorf("default report: %d escalated, %d tickets; want 5 and 2", r.Total.Escalated, r.Tickets)
		}
		// An RFC 3339 range: the morning of the first day only.
		if code, _ := b.call("GET", "/api/supervisor/report?from=2025-06-02T09:00:00Z&to=2025-06-02T09:01:30%2B00:00", supTok, nil, &r); code != http.StatusOK || r.Total.Escalated != 2 {
			t.Errorf("09:00–09:01:30 report: %d escalated, want 2", r.Total.Escalated)
		}
	})

	t.Run("Administration", func(t *testing.T) {
		var g handoff.Group
		code, body := b.call("PUT", "/api/admin/groups", admTok, map[string]any{"name": "VIP 贵宾", "tier": 1,
			"profile_match": map[string]string{"tier": "VIP"}, "strategy": "longest_idle", "languages": []string{"zh", "en"},
			"sla_seconds": 20, "accept_seconds": 15, "overflow": "Tech L2", "members": []int64{ann, cai}}, &g)
		if code != http.StatusOK || g.ID == 0 || g.ProfileMatch["tier"] != "vip" {
			t.Fatalf("create group = %d %s", code, body)
		}
		var groups struct{ Groups []handoff.Group }
		b.call("GET", "/api/admin/groups", supTok, nil, &groups)
		var got *handoff.Group
		for i := range groups.Groups {
			if groups.Groups[i].Name == "VIP 贵宾" {
				got = &groups.Groups[i]
			}
		}
		if got == nil || got.Overflow != "Tech L2" || got.SLASeconds != 20 || got.Strategy != "longest_idle" || fmt.Sprint(got.Members) != fmt.Sprint([]int64{ann, cai}) {
			t.Fatalf("groups listed: %+v", groups.Groups)
		}

		var ag handoff.Agent
		code, body = b.call("POST", "/api/admin/agents", admTok, map[string]any{"email": "Dan@Shop.cn", "name": "Dan", "password": "password123",
			"languages": []string{"en"}, "max_chats": 3, "roles": []string{"agent", "supervisor"}}, &ag)
		if code != http.StatusCreated || ag.ID == 0 || ag.Email != "dan@shop.cn" || strings.Contains(string(body), "argon2") {
			t.Fatalf("create account = %d %s", code, body)
		}
		var list struct{ Agents []accountView }
		code, body = b.call("GET", "/api/admin/agents", supTok, nil, &list)
		names := map[string]accountView{}
		for _, a := range list.Agents {
			names[a.Name] = a
		}
		if dan, ann := names["Dan"], names["Ann"]; code != http.StatusOK || dan.MaxChats != 3 || ann.Active != 0 || len(ann.Groups) != 2 ||
			strings.Contains(string(body), "argon2") || strings.Contains(string(body), "password") {
			t.Fatalf("accounts = %d %s", code, body)
		}

		var cr handoff.Canned
		if code, body := b.call("PUT", "/api/admin/canned", supTok, map[string]any{"shortcut": "/Hello", "language": "zh", "title": "问候", "text": "您好！"}, &cr); code != http.StatusOK || cr.Shortcut != "hello" {
			t.Fatalf("save canned = %d %s", code, body)
		}
		var canned struct{ Canned []handoff.Canned }
		if b.call("GET", "/api/admin/canned", supTok, nil, &canned); len(canned.Canned) != 1 || canned.Canned[0].Body != "您好！" {
			t.Fatalf("canned: %+v", canned)
		}

		var tickets struct{ Tickets []handoff.Ticket }
		if b.call("GET", "/api/supervisor/tickets", supTok, nil, &tickets); len(tickets.Tickets) != 2 || tickets.Tickets[0].ID != ticket.ID {
			t.Fatalf("open tickets: %+v", tickets)
		}
		if code, body := b.call("POST", fmt.Sprintf("/api/supervisor/tickets/%d/close", ticket.ID), supTok, nil, nil); code != http.StatusNoContent {
			t.Fatalf("close ticket = %d %s", code, body)
		}
		if b.call("GET", "/api/supervisor/tickets?state=closed", supTok, nil, &tickets); len(tickets.Tickets) != 1 || tickets.Tickets[0].State != "closed" {
			t.Fatalf("closed tickets: %+v", tickets)
		}
		if b.call("GET", "/api/supervisor/tickets?state=all&limit=10", supTok, nil, &tickets); len(tickets.Tickets) != 2 {
			t.Fatalf("all tickets: %+v", tickets)
		}
	})

	t.Run("InProcessMetrics", func(t *testing.T) {
		m := b.server.Metrics
		b.at(t1, 100*time.Second)
		m.Escalated("customer_asked")
		m.Assigned([]handoff.Assignment{
			{SessionID: 1, Group: "Sales L1", Enqueued: t1.Add(70 * time.Second), Assigned: t1.Add(95 * time.Second)},
			{SessionID: 2, Transfers: 1, Enqueued: t1, Assigned: t1.Add(99 * time.Second)}, // a transfer: counted, not timed
		})
		m.Abandoned("")
		m.Rated(5)
		m.Rated(9) // ignored
		m.Closed("")
		m.Transferred(handoff.Assignment{AgentID: bob})
		var nilMetrics *Metrics
		nilMetrics.Rated(3) // a nil *Metrics counts nothing and does not panic
		metrics := supScrape(t, b.url)
		for _, want := range []string{
			`kefu_handoff_escalations_total{reason="customer_asked"} 1`,
			`kefu_handoff_assignments_total{group="Sales L1"} 1`,
			`kefu_handoff_assignments_total{group="(any)"} 1`,
			`kefu_handoff_wait_seconds_bucket{group="Sales L1",le="15"} 0`,
			`kefu_handoff_wait_seconds_bucket{group="Sales L1",le="30"} 1`,
			`kefu_handoff_wait_seconds_count{group="Sales L1"} 1`,
			`kefu_handoff_notify_seconds_bucket{le="30"} 1`,
			`kefu_handoff_notify_seconds_count 1`,
			`kefu_handoff_abandons_total{group="(any)"} 1`,
			`kefu_handoff_csat_ratings_total{score="5"} 1`,
			`kefu_handoff_csat_ratings_total{score="1"} 0`,
			`kefu_handoff_closes_total{disposition="resolved"} 1`,
			`kefu_handoff_transfers_total{to="agent"} 2`, // the supervisor's transfer and this one
			`kefu_handoff_transfers_total{to="group"} 0`,
		} {
			if !strings.Contains(metrics, "\n"+want+"\n") {
				t.Errorf("/metrics lacks %q", want)
			}
		}
		if strings.Contains(metrics, `kefu_handoff_wait_seconds_count{group="(any)"}`) {
			t.Error("a transfer was timed as a wait")
		}
	})
}

func supCheckStats(t *testing.T, name string, got, want handoff.Stats) {
	t.Helper()
	type f struct {
		name      string
		got, want float64
	}
	for _, x := range []f{
		{"escalated", float64(got.Escalated), float64(want.Escalated)},
		{"assigned", float64(got.Assigned), float64(want.Assigned)},
		{"closed", float64(got.Closed), float64(want.Closed)},
		{"abandoned", float64(got.Abandoned), float64(want.Abandoned)},
		{"transferred", float64(got.Transferred), float64(want.Transferred)},
		{"avg wait", got.AvgWait, want.AvgWait},
		{"p90 wait", got.P90Wait, want.P90Wait},
		{"avg first response", got.AvgFRT, want.AvgFRT},
		{"avg handling", got.AvgHandle, want.AvgHandle},
		{"SLA met", got.SLAMet, want.SLAMet},
		{"abandon rate", got.AbandonRate, want.AbandonRate},
		{"transfer rate", got.TransferRate, want.TransferRate},
		{"CSAT count", float64(got.CSATCount), float64(want.CSATCount)},
		{"CSAT", got.CSAT, want.CSAT},
		{"CSAT satisfied", got.CSATShare, want.CSATShare},
	} {
		if !supNear(x.got, x.want) {
			t.Errorf("%s: %s = %v, want %v", name, x.name, x.got, x.want)
		}
	}
}

func supScrape(t *testing.T, base string) string {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/metrics = %d %s", res.StatusCode, data)
	}
	return "\n" + string(data)
}

func TestCached(t *testing.T) {
	t.Parallel()
	n := 0
	c := &cached[int]{ttl: time.Hour, fetch: func() (int, error) { n++; return n, nil }}
	for range 3 {
		if v, _ := c.get(); v != 1 {
			t.Fatalf("get = %d, want the first read, 1", v)
		}
	}
	c.ttl = 0
	if v, _ := c.get(); v != 2 {
		t.Fatalf("get after the ttl = %d, want a new read, 2", v)
	}
}

func TestReportRange(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 6, 10, 12, 0, 0, 0, time.UTC)
	day := func(d int) time.Time { return time.Date(2025, 6, d, 0, 0, 0, 0, time.UTC) }
	for _, tt := range []struct {
		from, to         string
		wantFrom, wantTo time.Time
		bad              bool
	}{
		{"", "", now.Add(-7 * 24 * time.Hour), now, false},
		{"2025-06-01", "", day(1), now, false},
		{"", "2025-06-05", day(6).Add(-7 * 24 * time.Hour), day(6), false},
		{"2025-06-01", "2025-06-01", day(1), day(2), false},
		{"2025-06-01T08:00:00+08:00", "2025-06-01T10:00:00Z", day(1), day(1).Add(10 * time.Hour), false},
		{"2025-06-02", "2025-06-01", time.Time{}, time.Time{}, true},
		{"2024-06-01", "2025-06-02", time.Time{}, time.Time{}, true},
		{"2024-06-02", "2025-06-01", day(2).AddDate(-1, 0, 0), day(2), false}, // 366 days
		{"June 1", "", time.Time{}, time.Time{}, true},
		{"", "2025-06-01 10:00", time.Time{}, time.Time{}, true},
	} {
		from, to, err := reportRange(tt.from, tt.to, now)
		if tt.bad {
			if err == nil {
				t.Errorf("reportRange(%q, %q) = %v, %v; want an error", tt.from, tt.to, from, to)
			}
			continue
		}
		if err != nil || !from.Equal(tt.wantFrom) || !to.Equal(tt.wantTo) {
			t.Errorf("reportRange(%q, %q) = %v, %v, %v; want %v, %v", tt.from, tt.to, from, to, err, tt.wantFrom, tt.wantTo)
		}
	}
}
