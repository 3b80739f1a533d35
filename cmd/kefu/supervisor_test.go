package main

import (
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kefu-dev/kefu/handoff"
)

// Demo skill groups seeded by seedDemo.
const (
	demoL1 = "售前 Pre-sales L1"
	demoL2 = "技术支持 Tech L2"
)

// askForPerson opens a customer conversation that asks for a person and returns its id once
// it waits in the queue.
func askForPerson(t *testing.T, m *Main) int64 {
	t.Helper()
	id, token := newSession(t, m.URL)
	c := dial(t, m.URL, "/ws/customer")
	c.send(map[string]any{"type": "hello", "session_id": id, "token": token})
	c.expect("welcome", func(f frameMsg) bool { return f.Type == "welcome" })
	c.send(map[string]any{"type": "message", "client_id": "c-human", "text": "转人工"})
	c.expect("queued state", func(f frameMsg) bool { return f.Type == "state" && f.State == "queued" })
	return id
}

// askBot has a customer ask the bot a question it answers from the knowledge base.
func askBot(t *testing.T, m *Main, q string) {
	t.Helper()
	id, token := newSession(t, m.URL)
	c := dial(t, m.URL, "/ws/customer")
	c.send(map[string]any{"type": "hello", "session_id": id, "token": token})
	c.expect("welcome", func(f frameMsg) bool { return f.Type == "welcome" })
	c.send(map[string]any{"type": "message", "client_id": "q1", "text": q})
	c.expect("an answer with a source", func(f frameMsg) bool {
		return f.Type == "message" && f.chat(t).Role == "bot" && len(f.chat(t).Meta.Sources) > 0
	})
}

func demoAgentID(t *testing.T, m *Main) int64 {
	t.Helper()
	code, me := getJSON(t, m.URL+"/api/agent/me", login(t, m, DemoAgentEmail))
	if code != http.StatusOK {
		t.Fatalf("GET /api/agent/me = %d %v", code, me)
	}
	return int64(me["id"].(float64))
}

// waitAssigned waits until the router has given the session to an agent.
func waitAssigned(t *testing.T, m *Main, session int64) handoff.Assignment {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a, ok, err := m.server.Queue.Current(t.Context(), session)
		if err != nil {
			t.Fatal(err)
		}
		if ok && a.AgentID != 0 {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %d was not assigned: %+v", session, a)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func scrapeMetrics(t *testing.T, m *Main) string {
	t.Helper()
	res, err := http.Get(m.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d %s", res.StatusCode, body)
	}
	return "\n" + string(body)
}

// TestSupervisorAPIServed checks the supervisor's API on the real server with the demo data:
// the roles, the demo skill groups, a waiting conversation in the live view and in
// Prometheus's queue gauge, and the bot's containment in the report.
func TestSupervisorAPIServed(t *testing.T) {
	t.Parallel()
	m := startMain(t)
	sup := login(t, m, DemoSupervisorEmail)
	live := m.URL + "/api/supervisor/live"
	for name, tc := range map[string]struct {
		bearer string
		want   int
	}{
		"no login":     {"", http.StatusUnauthorized},
		"forged token": {"kefu-forged-token", http.StatusUnauthorized},
		"agent":        {login(t, m, DemoAgentEmail), http.StatusForbidden},
		"editor":       {login(t, m, DemoEditorEmail), http.StatusForbidden},
		"supervisor":   {sup, http.StatusOK},
	} {
		if code, body := getJSON(t, live, tc.bearer); code != tc.want {
			t.Errorf("%s: GET /api/supervisor/live = %d %v, want %d", name, code, body, tc.want)
		}
	}

	agentID := demoAgentID(t, m)
	_, body := getJSON(t, m.URL+"/api/admin/groups", sup)
	groups := map[string]map[string]any{}
	for _, g := range body["groups"].([]any) {
		g := g.(map[string]any)
		groups[g["name"].(string)] = g
	}
	l1, l2 := groups[demoL1], groups[demoL2]
	if len(groups) != 2 || l1["tier"].(float64) != 1 || l1["overflow"] != demoL2 || l2["tier"].(float64) != 2 ||
		len(l1["members"].([]any)) != 1 || int64(l1["members"].([]any)[0].(float64)) != agentID {
		t.Fatalf("demo groups: %v", body)
	}

	// One customer is answered by the bot, one asks for a person while nobody is online.
	askBot(t, m, "退款多久到账？")
	waiting := askForPerson(t, m)
	_, body = getJSON(t, live, sup)
	var found bool
	for _, g := range body["groups"].([]any) {
		g := g.(map[string]any)
		if g["name"] == demoL1 {
			found = g["waiting"].(float64) == 1 && g["online"].(float64) == 0
		}
	}
	if !found {
		t.Fatalf("live view without session %d waiting in %s: %v", waiting, demoL1, body)
	}
	metrics := scrapeMetrics(t, m)
	for _, want := range []string{
		`kefu_handoff_queue_waiting{group="` + demoL1 + `"} 1`,
		`kefu_handoff_queue_waiting{group="` + demoL2 + `"} 0`,
		`kefu_handoff_agents{status="offline"} 1`,
		"# TYPE kefu_handoff_notify_seconds histogram",
		`kefu_handoff_notify_seconds_bucket{le="0.05"} `,
		`kefu_stats_up{source="live"} 1`,
		`kefu_bot_last24h_containment_ratio 0.5`,
		"go_goroutines ",
	} {
		if !strings.Contains(metrics, "\n"+want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	code, body := getJSON(t, m.URL+"/api/supervisor/report", sup)
	if code != http.StatusOK || body["sessions"].(float64) != 2 || body["contained"].(float64) != 1 || body["containment"].(float64) != 0.5 {
		t.Fatalf("report = %d %v, want 2 sessions of which the bot contained 1", code, body)
	}
	if total := body["total"].(map[string]any); total["escalated"].(float64) != 1 {
		t.Errorf("report total: %v", total)
	}
	if code, body := getJSON(t, m.URL+"/api/supervisor/report?from=2025-02-30", sup); code != http.StatusBadRequest {
		t.Errorf("report from 30 February = %d %v, want 400", code, body)
	}
}

// TestSupervisorInBrowser drives the supervisor's page (api/webtest/supervisor.mjs) in
// headless Chromium. The demo agent holds one conversation and is away; another waits in the
// first-tier group; a message was left while nobody was online. The page must show the queue
// and the agent's load, follow a new escalation by itself, switch to Chinese, create and edit
// a skill group, save a canned reply, close the message, and show the metrics.
func TestSupervisorInBrowser(t *testing.T) {
	t.Parallel()
	shots := needBrowser(t)
	m := startMain(t)
	ctx := t.Context()
	agentID := demoAgentID(t, m)

	held := askForPerson(t, m)
	if err := m.server.Agents.SetStatus(ctx, agentID, handoff.Online); err != nil {
		t.Fatal(err)
	}
	m.server.Queue.Wake()
	if a := waitAssigned(t, m, held); a.AgentID != agentID {
		t.Fatalf("session %d went to agent %d", held, a.AgentID)
	}
	if err := m.server.Queue.Accept(ctx, agentID, held); err != nil { // the offer does not lapse
		t.Fatal(err)
	}
	if err := m.server.Agents.SetStatus(ctx, agentID, handoff.Away); err != nil {
		t.Fatal(err)
	}
	askForPerson(t, m)
	if _, err := m.server.Desk.LeaveMessage(ctx, handoff.Ticket{SessionID: held, Name: "王女士", Email: "wang@example.com", Body: "请明天上午回电"}); err != nil {
		t.Fatal(err)
	}

	cmd := exec.CommandContext(ctx, "node", "../../api/webtest/supervisor.mjs", m.URL, DemoSupervisorEmail, m.Config.DemoPassword, shots,
		DemoAgentEmail)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("browser walk failed: %v", err)
	}
}
