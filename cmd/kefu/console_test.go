package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kefu-dev/kefu/handoff"
	"github.com/kefu-dev/kefu/internal/token"
)

// Logins the desk tests add to the demo data (DemoPassword, like the demo accounts).
const (
	secondAgentEmail  = "second@kefu.local"
	billingAgentEmail = "billing@kefu.local"
	leadEmail         = "lead@kefu.local"
	billingGroup      = "账单 Billing L3"
)

// deskBundle is a running server with a desk around the demo agent: a second agent in the
// demo agent's skill groups, a billing group whose only agent stays offline, a supervisor,
// and canned replies.
type deskBundle struct {
	m                           *Main
	desk                        *handoff.Desk
	demo, second, billing, lead handoff.Agent
}

func setupDesk(t *testing.T, acceptSeconds int) *deskBundle {
	t.Helper()
	ctx := t.Context()
	m := startMain(t)
	agents := handoff.NewAgents(m.pool, m.Log)
	b := &deskBundle{m: m, desk: handoff.NewDesk(m.pool)}
	var err error
	if _, b.demo, err = agents.Login(ctx, DemoAgentEmail, m.Config.DemoPassword); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		to *handoff.Agent
		ag handoff.Agent
	}{
		{&b.second, handoff.Agent{Email: secondAgentEmail, Name: "Second Agent 二号客服", MaxChats: 5}},
		{&b.billing, handoff.Agent{Email: billingAgentEmail, Name: "Billing Agent 账单客服", MaxChats: 5}},
		{&b.lead, handoff.Agent{Email: leadEmail, Name: "Team Lead 组长", Roles: []string{handoff.RoleSupervisor}}},
	} {
		if *x.to, err = agents.Create(ctx, x.ag, m.Config.DemoPassword); err != nil {
			t.Fatal(err)
		}
	}
	// The second agent joins the demo agent's groups (or a first-line group of the two, when
	// the demo has none), where escalations go; billing is the last tier, never routed to.
	b.firstLine(t, func(g *handoff.Group) { g.Members = append(g.Members, b.second.ID); g.AcceptSeconds = acceptSeconds },
		handoff.Group{Name: "一线 L1", Tier: 1, AcceptSeconds: acceptSeconds, Members: []int64{b.demo.ID, b.second.ID}})
	if _, err := b.desk.SaveGroup(ctx, handoff.Group{Name: billingGroup, Tier: 3, Members: []int64{b.billing.ID}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []handoff.Canned{
		{Shortcut: "thanks", Language: "zh", Title: "感谢等待", Body: "感谢您的耐心等待，我马上为您查询。"},
		{Shortcut: "thanks", Language: "en", Title: "Thanks for waiting", Body: "Thank you for waiting, let me check that for you."},
		{Shortcut: "bye", Language: "", Title: "再见 Bye", Body: "祝您生活愉快！Have a nice day!"},
	} {
		if _, err := b.desk.SaveCanned(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// firstLine changes every skill group the demo agent is in, or creates def when there is none.
func (b *deskBundle) firstLine(t *testing.T, change func(*handoff.Group), def handoff.Group) {
	t.Helper()
	groups, err := b.desk.Groups(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	changed := false
	for _, g := range groups {
		if !slices.Contains(g.Members, b.demo.ID) {
			continue
		}
		change(&g)
		if _, err := b.desk.SaveGroup(t.Context(), g); err != nil {
			t.Fatal(err)
		}
		changed = true
	}
	if !changed {
		if _, err := b.desk.SaveGroup(t.Context(), def); err != nil {
			t.Fatal(err)
		}
	}
}

// deskConn is a WebSocket client that keeps every frame as JSON, so tests can look at any
// field, and everything it read, so they can say what never arrived.
type deskConn struct {
	t      *testing.T
	name   string
	conn   *websocket.Conn
	frames chan map[string]any
	closed chan error
	seen   []map[string]any
	raw    []string
}

func deskDial(t *testing.T, m *Main, path, name string) *deskConn {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(m.URL, "http")+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &deskConn{t: t, name: name, conn: conn, frames: make(chan map[string]any, 512), closed: make(chan error, 1)}
	go func() {
		defer close(c.frames)
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				c.closed <- err
				return
			}
			var f map[string]any
			if err := json.Unmarshal(data, &f); err != nil {
				c.closed <- fmt.Errorf("bad frame %q: %w", data, err)
				return
			}
			f["_raw"] = string(data)
			c.frames <- f
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return c
}

func (c *deskConn) send(v any) {
	c.t.Helper()
	if err := c.conn.WriteJSON(v); err != nil {
		c.t.Fatal(err)
	}
}

func (c *deskConn) keep(f map[string]any) {
	c.seen = append(c.seen, f)
	c.raw = append(c.raw, f["_raw"].(string))
}

// expect reads frames until one matches, failing after 10 s.
func (c *deskConn) expect(what string, match func(map[string]any) bool) map[string]any {
	c.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				c.t.Fatalf("%s: connection closed while waiting for %s: %v", c.name, what, <-c.closed)
			}
			c.keep(f)
			if match(f) {
				return f
			}
		case <-timeout:
			c.t.Fatalf("%s: timed out waiting for %s", c.name, what)
		}
	}
}

// expectError waits for the error frame of an action on a session and checks its code.
func (c *deskConn) expectError(what, frameType string, session int64, code string) map[string]any {
	c.t.Helper()
	e := c.expect(what, func(f map[string]any) bool { return f["type"] == "error" })
	if e["code"] != code || (frameType != "" && e["frame"] != frameType) || (session != 0 && num(e["session_id"]) != session) ||
		e["message"] == "" {
		c.t.Fatalf("%s: %s = %v, want code %s for frame %q on session %d", c.name, what, e, code, frameType, session)
	}
	return e
}

// drain reads what arrives within d.
func (c *deskConn) drain(d time.Duration) {
	deadline := time.After(d)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				return
			}
			c.keep(f)
		case <-deadline:
			return
		}
	}
}

func num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

func obj(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func isMessage(f map[string]any, match func(m map[string]any) bool) bool {
	return f["type"] == "message" && match(obj(f["message"]))
}

func meta(m map[string]any) map[string]any { return obj(m["meta"]) }

// agentConsole logs in on the agent socket.
func agentConsole(t *testing.T, m *Main, email string) (*deskConn, string) {
	t.Helper()
	tok := login(t, m, email)
	c := deskDial(t, m, "/ws/agent", email)
	c.send(map[string]any{"type": "hello", "token": tok})
	c.expect("welcome", func(f map[string]any) bool { return f["type"] == "welcome" })
	return c, tok
}

// escalate opens a customer conversation, asks the knowledge base a question and then for a
// person.
func escalate(t *testing.T, m *Main, question, ask string) (*deskConn, int64, string) {
	t.Helper()
	id, tok := newSession(t, m.URL)
	c := deskDial(t, m, "/ws/customer", fmt.Sprintf("customer %d", id))
	c.send(map[string]any{"type": "hello", "session_id": id, "token": tok})
	c.expect("welcome", func(f map[string]any) bool { return f["type"] == "welcome" })
	c.send(map[string]any{"type": "message", "client_id": "q", "text": question})
	c.expect("a knowledge answer", func(f map[string]any) bool {
		return isMessage(f, func(m map[string]any) bool { return m["role"] == "bot" && meta(m)["sources"] != nil })
	})
	c.send(map[string]any{"type": "message", "client_id": "human", "text": ask})
	c.expect("the escalation", func(f map[string]any) bool {
		return isMessage(f, func(m map[string]any) bool { return m["role"] == "bot" && meta(m)["reason"] != nil })
	})
	return c, id, tok
}

func (b *deskBundle) context(t *testing.T, bearer string, session int64) (int, map[string]any) {
	t.Helper()
	return getJSON(t, fmt.Sprintf("%s/api/agent/sessions/%d/context", b.m.URL, session), bearer)
}

// TestAgentDesk drives the agent desk's WebSocket and REST routes through the real server: who
// may read and act on a conversation, accepting, typing, internal notes that customers never
// receive, transfers (and the clear errors of bad ones), closing with a disposition and the
// survey, offers that lapse, and logins that are forged, expired or a customer's.
func TestAgentDesk(t *testing.T) {
	t.Parallel()
	b := setupDesk(t, 120)
	m := b.m
	a1, t1 := agentConsole(t, m, DemoAgentEmail)
	cust, id, custToken := escalate(t, m, "退款多久到账？", "转人工")

	f := a1.expect("the offer", func(f map[string]any) bool { return f["type"] == "assigned" })
	a := obj(f["assignment"])
	group, _ := a["group"].(string)
	if num(a["session_id"]) != id || a["reason"] != "customer_asked" || group == "" || group == billingGroup || a["accepted"] != false ||
		a["accept_by"] == nil || f["server_time"] == nil {
		t.Fatalf("assignment = %v", a)
	}
	a2, t2 := agentConsole(t, m, secondAgentEmail)
	t3 := login(t, m, billingAgentEmail)
	tsu := login(t, m, leadEmail)
	ted := login(t, m, DemoEditorEmail)

	// The whole context, for whoever may read it.
	code, ctx := b.context(t, t1, id)
	if code != http.StatusOK || ctx["mine"] != true || obj(ctx["assignment"])["reason"] != "customer_asked" {
		t.Fatalf("context for the holder = %d %v", code, ctx)
	}
	var intent, source bool
	for _, x := range ctx["messages"].([]any) {
		msg := obj(x)
		intent = intent || (msg["role"] == "customer" && meta(msg)["intent"] == "refund" && meta(msg)["confidence"].(float64) > 0)
		source = source || (msg["role"] == "bot" && meta(msg)["sources"] != nil)
	}
	if !intent || !source {
		t.Fatalf("context lacks the bot's intents (%v) or cited knowledge (%v)", intent, source)
	}
	for name, tc := range map[string]struct {
		bearer string
		code   int
		mine   any
	}{
		"a colleague in the group reads it": {t2, http.StatusOK, false},
		"a supervisor reads any":            {tsu, http.StatusOK, false},
		"an agent of another group":         {t3, http.StatusNotFound, nil},
		"an editor":                         {ted, http.StatusForbidden, nil},
		"no login":                          {"", http.StatusUnauthorized, nil},
		"a forged token":                    {"kefu-forged-token", http.StatusUnauthorized, nil},
		"a customer's token":                {custToken, http.StatusUnauthorized, nil},
	} {
		code, body := b.context(t, tc.bearer, id)
		if code != tc.code || (tc.mine != nil && body["mine"] != tc.mine) || (tc.code != http.StatusOK && body["error"] == nil) {
			t.Errorf("%s: context = %d %v, want %d", name, code, body, tc.code)
		}
	}
	if code, body := b.context(t, t1, 999999); code != http.StatusNotFound {
		t.Errorf("context of a conversation that does not exist = %d %v", code, body)
	}

	// Nobody acts on a conversation they do not hold, even a colleague who may read it.
	for _, tc := range []map[string]any{
		{"type": "reply", "session_id": id, "client_id": "x", "text": "不是我的会话"},
		{"type": "accept", "session_id": id},
		{"type": "typing", "session_id": id, "typing": true},
		{"type": "note", "session_id": id, "text": "not mine"},
		{"type": "transfer", "session_id": id, "to_group": billingGroup},
		{"type": "close", "session_id": id, "disposition": "resolved"},
	} {
		a2.send(tc)
		a2.expectError("not yours: "+tc["type"].(string), tc["type"].(string), id, "not_found")
	}
	if code, _ := postJSON(t, fmt.Sprintf("%s/api/agent/sessions/%d/accept", m.URL, id), t2, nil); code != http.StatusNotFound {
		t.Errorf("a colleague accepting another's offer = %d, want 404", code)
	}

	// Accept, over the socket and (again, harmlessly) over REST.
	a1.send(map[string]any{"type": "accept", "session_id": id})
	a1.expect("accepted", func(f map[string]any) bool { return f["type"] == "accepted" && num(f["session_id"]) == id })
	if code, body := postJSON(t, fmt.Sprintf("%s/api/agent/sessions/%d/accept", m.URL, id), t1, nil); code != http.StatusOK {
		t.Errorf("accepting again = %d %v", code, body)
	}

	// Typing reaches the customer; the note never does.
	a1.send(map[string]any{"type": "typing", "session_id": id, "typing": true})
	cust.expect("the agent typing", func(f map[string]any) bool {
		return f["type"] == "typing" && f["role"] == "agent" && f["typing"] == true
	})
	const secret = "NOTE-客户曾两次退款失败"
	a1.send(map[string]any{"type": "note", "session_id": id, "text": secret})
	n := a1.expect("the note", func(f map[string]any) bool { return f["type"] == "note" })
	if obj(n["note"])["text"] != secret || num(n["session_id"]) != id {
		t.Fatalf("note frame = %v", n)
	}
	a1.send(map[string]any{"type": "note", "session_id": id, "text": "  "})
	a1.expectError("an empty note", "note", id, "invalid")

	// Bad transfers and closes change nothing.
	for name, tc := range map[string]struct {
		frame map[string]any
		code  string
	}{
		"unknown group":   {map[string]any{"to_group": "no-such-group"}, "not_found"},
		"offline group":   {map[string]any{"to_group": billingGroup}, "conflict"},
		"offline agent":   {map[string]any{"to_agent": b.billing.ID}, "conflict"},
		"unknown agent":   {map[string]any{"to_agent": 999999}, "not_found"},
		"both":            {map[string]any{"to_agent": b.second.ID, "to_group": group}, "invalid"},
		"neither":         {map[string]any{}, "invalid"},
		"oneself":         {map[string]any{"to_agent": b.demo.ID}, "invalid"},
		"wrong JSON type": {map[string]any{"to_agent": "two"}, "invalid"},
	} {
		tc.frame["type"], tc.frame["session_id"] = "transfer", id
		a1.send(tc.frame)
		a1.expectError("transfer: "+name, "transfer", id, tc.code)
	}
	a1.send(map[string]any{"type": "close", "session_id": id, "disposition": "fixed-it"})
	if e := a1.expectError("an unknown disposition", "close", id, "invalid"); !strings.Contains(e["message"].(string), "resolved") {
		t.Errorf("the disposition error does not list the valid ones: %v", e["message"])
	}
	if code, ctx := b.context(t, t1, id); code != http.StatusOK || ctx["mine"] != true || len(ctx["notes"].([]any)) != 1 {
		t.Fatalf("after the bad requests the conversation is %d %v", code, ctx)
	}

	// Transfer to the colleague, with a note: they get the offer with it, the customer hears.
	const handover = "TRANSFER-请核对退款单 RF-1"
	a1.send(map[string]any{"type": "transfer", "session_id": id, "to_agent": b.second.ID, "note": handover})
	a1.expect("transferred", func(f map[string]any) bool { return f["type"] == "transferred" && num(f["session_id"]) == id })
	f = a2.expect("the transferred offer", func(f map[string]any) bool { return f["type"] == "assigned" })
	if a := obj(f["assignment"]); num(a["session_id"]) != id || a["note"] != handover || num(a["transfers"]) != 1 || a["accepted"] != false {
		t.Fatalf("transferred assignment = %v", a)
	}
	cust.expect("a person joined again", func(f map[string]any) bool {
		return isMessage(f, func(m map[string]any) bool { return meta(m)["event"] == "agent_joined" })
	})
	if _, ctx := b.context(t, t2, id); ctx["mine"] != true || len(ctx["notes"].([]any)) != 1 {
		t.Fatalf("the new holder's context = %v", ctx)
	}
	a1.send(map[string]any{"type": "reply", "session_id": id, "client_id": "late-1", "text": "我还在吗"})
	a1.expectError("a reply after transferring", "reply", id, "not_found")

	// The new agent answers and closes; the customer is asked to rate.
	a2.send(map[string]any{"type": "reply", "session_id": id, "client_id": "r1", "text": "您好，我是二号客服"})
	cust.expect("the second agent's reply", func(f map[string]any) bool {
		return isMessage(f, func(m map[string]any) bool { return m["role"] == "agent" && m["text"] == "您好，我是二号客服" })
	})
	a2.send(map[string]any{"type": "close", "session_id": id, "disposition": "follow_up"})
	a2.expect("closed", func(f map[string]any) bool { return f["type"] == "closed" && num(f["session_id"]) == id })
	cust.expect("the survey", func(f map[string]any) bool {
		return isMessage(f, func(m map[string]any) bool { return meta(m)["survey"] == true })
	})
	_, before := getJSON(t, fmt.Sprintf("%s/api/sessions/%d/messages", m.URL, id), custToken)
	a2.send(map[string]any{"type": "reply", "session_id": id, "client_id": "r2", "text": "closed already"})
	a2.expectError("a reply to a closed conversation", "reply", id, "not_found")
	a2.send(map[string]any{"type": "close", "session_id": id})
	a2.expectError("closing twice", "close", id, "not_found")
	_, after := getJSON(t, fmt.Sprintf("%s/api/sessions/%d/messages", m.URL, id), custToken)
	if len(before["messages"].([]any)) != len(after["messages"].([]any)) {
		t.Fatalf("a refused reply was stored: %d → %d messages", len(before["messages"].([]any)), len(after["messages"].([]any)))
	}
	if code, _ := b.context(t, t2, id); code != http.StatusNotFound {
		t.Errorf("context of a closed conversation for an agent = %d, want 404", code)
	}
	cust.drain(time.Second)
	for _, r := range cust.raw {
		if strings.Contains(r, "NOTE-") || strings.Contains(r, "TRANSFER-") {
			t.Fatalf("the customer received internal text: %s", r)
		}
	}

	// The desk's read routes.
	_, canned := getJSON(t, m.URL+"/api/agent/canned", t1)
	_, en := getJSON(t, m.URL+"/api/agent/canned?lang=en", t1)
	if len(canned["canned"].([]any)) != 3 || len(en["canned"].([]any)) != 2 {
		t.Errorf("canned = %v, in English %v", canned, en)
	}
	_, groups := getJSON(t, m.URL+"/api/agent/groups", t1)
	online := map[string]float64{}
	for _, g := range groups["groups"].([]any) {
		online[obj(g)["name"].(string)] = obj(g)["online"].(float64)
	}
	if online[group] != 1 || online[billingGroup] != 0 {
		t.Errorf("groups = %v, want the colleague online in %s and nobody in %s", groups, group, billingGroup)
	}
	_, colleagues := getJSON(t, m.URL+"/api/agent/agents", t1)
	var sawSecond bool
	for _, x := range colleagues["agents"].([]any) {
		c := obj(x)
		if num(c["id"]) == b.demo.ID {
			t.Errorf("the transfer picker lists the agent themself")
		}
		sawSecond = sawSecond || (num(c["id"]) == b.second.ID && c["status"] == "online" && c["room"] == true)
	}
	if !sawSecond {
		t.Errorf("agents = %v, want the second agent online with room", colleagues)
	}
	code, kb := getJSON(t, m.URL+"/api/agent/kb/search?q="+strings.ReplaceAll("How long does shipping take?", " ", "+")+"&lang=en", t1)
	results, _ := kb["results"].([]any)
	if code != http.StatusOK || len(results) == 0 || obj(results[0])["answers"] != true || !strings.Contains(obj(results[0])["text"].(string), "24 hours") {
		t.Errorf("kb search = %d %v", code, kb)
	}
	if code, _ := getJSON(t, m.URL+"/api/agent/kb/search?q=", t1); code != http.StatusBadRequest {
		t.Errorf("kb search without a question = %d, want 400", code)
	}
	for _, path := range []string{"/api/agent/canned", "/api/agent/groups", "/api/agent/agents", "/api/agent/assignments"} {
		if code, _ := getJSON(t, m.URL+path, "kefu-forged-token"); code != http.StatusUnauthorized {
			t.Errorf("GET %s with a forged token = %d, want 401", path, code)
		}
	}

	// Logins that are not an agent's: refused on the socket, which stays unauthenticated.
	for name, tc := range map[string]struct{ token, code string }{
		"forged token":     {"kefu-forged-token", "unauthorized"},
		"customer's token": {custToken, "unauthorized"},
		"editor":           {ted, "forbidden"},
	} {
		c := deskDial(t, m, "/ws/agent", name)
		c.send(map[string]any{"type": "hello", "token": tc.token})
		c.expectError(name, "", 0, tc.code)
		c.send(map[string]any{"type": "reply", "session_id": id, "client_id": "x", "text": "hi"})
		c.expectError(name+" then a reply", "", 0, "unauthorized")
	}

	// An offer that is neither accepted nor answered lapses: the next heartbeat's sync no
	// longer lists it and says the agent is away; acting on it is not_found.
	b.firstLine(t, func(g *handoff.Group) { g.AcceptSeconds = 1 }, handoff.Group{})
	a2.send(map[string]any{"type": "presence", "status": "away"})
	a2.expect("away", func(f map[string]any) bool { return f["type"] == "presence" && f["status"] == "away" })
	_, id2, _ := escalate(t, m, "How long does shipping take?", "talk to a human")
	a1.expect("the second offer", func(f map[string]any) bool {
		return f["type"] == "assigned" && num(obj(f["assignment"])["session_id"]) == id2
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		time.Sleep(500 * time.Millisecond)
		a1.send(map[string]any{"type": "heartbeat"})
		s := a1.expect("sync", func(f map[string]any) bool { return f["type"] == "sync" })
		if len(s["assignments"].([]any)) == 0 && s["status"] == "away" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the offer did not lapse: %v", s)
		}
	}
	a1.send(map[string]any{"type": "reply", "session_id": id2, "client_id": "too-late", "text": "sorry"})
	a1.expectError("a reply to a lapsed offer", "reply", id2, "not_found")

	// An expired login ends the console at its next heartbeat, and the REST routes refuse it.
	ax, tx := agentConsole(t, m, DemoAgentEmail)
	if _, err := m.pool.Exec(t.Context(), "UPDATE handoff_token SET expires_at = now() - interval '1 minute' WHERE token_hash = $1", token.Hash(tx)); err != nil {
		t.Fatal(err)
	}
	ax.send(map[string]any{"type": "heartbeat"})
	ax.expectError("an expired login", "", 0, "unauthorized")
	for range ax.frames {
	}
	if err := <-ax.closed; !websocket.IsCloseError(err, 4503) {
		t.Errorf("an expired console closed with %v, want 4503", err)
	}
	if code, _ := getJSON(t, m.URL+"/api/agent/canned", tx); code != http.StatusUnauthorized {
		t.Errorf("an expired token on REST = %d, want 401", code)
	}
}

// TestConsoleInBrowser walks the agent console (api/webtest/console.mjs) in headless Chromium:
// a customer asks for a person; the agent is notified, accepts, reads the context, answers
// with a canned reply and a knowledge answer, leaves a note the customer never receives and
// transfers to a colleague, who reads the note, answers and closes; the customer is asked to
// rate. Then the same in English.
func TestConsoleInBrowser(t *testing.T) {
	t.Parallel()
	shots := needBrowser(t)
	b := setupDesk(t, 120)
	cmd := exec.CommandContext(t.Context(), "node", "../../api/webtest/console.mjs", b.m.URL, DemoAgentEmail, secondAgentEmail,
		b.m.Config.DemoPassword, shots)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("browser walk failed: %v", err)
	}
}

// TestConsoleLapseInBrowser: an offer the agent does not accept in time leaves the console
// (api/webtest/console.mjs lapse), which says why and shows the agent away, as the router made
// them.
func TestConsoleLapseInBrowser(t *testing.T) {
	t.Parallel()
	shots := needBrowser(t)
	b := setupDesk(t, 3)
	cmd := exec.CommandContext(t.Context(), "node", "../../api/webtest/console.mjs", b.m.URL, DemoAgentEmail, secondAgentEmail,
		b.m.Config.DemoPassword, shots, "lapse")
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("browser walk failed: %v", err)
	}
}
