package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kefu-dev/kefu/internal/pgtest"
	"github.com/kefu-dev/kefu/nlu"
)

// startMain runs the whole server, as the binary does, on 127.0.0.1:0 against a schema of
// its own on the test PostgreSQL and the real ONNX Runtime.
func startMain(t *testing.T) *Main {
	t.Helper()
	_, url := pgtest.SchemaURL(t)
	m := &Main{
		Config: Config{Addr: "127.0.0.1:0", DatabaseURL: url, ORTLib: nlu.FindRuntime(), ModelDir: "../../models/intent", FlowsDir: "../../dialog/flows",
			EncoderDir: "../../models/encoder", KBAnswerability: "../../models/answerability", KBFallback: "en",
			Demo: true, KBThreshold: 0.6, EscalateAfter: 2, RouteInterval: 200 * time.Millisecond, DemoPassword: "demo-password"},
		Log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if err := m.Run(t.Context()); err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

type frameMsg struct {
	Type      string          `json:"type"`
	Code      string          `json:"code"`
	Message   json.RawMessage `json:"message"`
	ClientID  string          `json:"client_id"`
	SessionID int64           `json:"session_id"`
	Seq       int64           `json:"seq"`
	Duplicate bool            `json:"duplicate"`
	State     string          `json:"state"`
	Position  int             `json:"position"`
	Messages  []chatMsg       `json:"messages"`
	Session   struct {
		ID    int64  `json:"id"`
		State string `json:"state"`
	} `json:"session"`
	Assignment struct {
		SessionID int64  `json:"session_id"`
		Reason    string `json:"reason"`
	} `json:"assignment"`
}

type chatMsg struct {
	SessionID int64  `json:"session_id"`
	Seq       int64  `json:"seq"`
	Role      string `json:"role"`
	ClientID  string `json:"client_id"`
	Text      string `json:"text"`
	Meta      struct {
		Intent  string `json:"intent"`
		Event   string `json:"event"`
		Reason  string `json:"reason"`
		Sources []struct {
			Key      string `json:"key"`
			Title    string `json:"title"`
			Language string `json:"language"`
			Version  int    `json:"version"`
		} `json:"sources"`
	} `json:"meta"`
}

func (f frameMsg) chat(t *testing.T) chatMsg {
	t.Helper()
	var m chatMsg
	if err := json.Unmarshal(f.Message, &m); err != nil {
		t.Fatalf("frame %s has no chat message: %v", f.Type, err)
	}
	return m
}

// wsClient reads frames in the background so tests can wait for the one they expect.
type wsClient struct {
	t      *testing.T
	conn   *websocket.Conn
	frames chan frameMsg
	closed chan error
}

func dial(t *testing.T, base, path string) *wsClient {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &wsClient{t: t, conn: conn, frames: make(chan frameMsg, 256), closed: make(chan error, 1)}
	go func() {
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				c.closed <- err
				close(c.frames)
				return
			}
			var f frameMsg
			if err := json.Unmarshal(data, &f); err != nil {
				c.closed <- fmt.Errorf("bad frame %q: %w", data, err)
				close(c.frames)
				return
			}
			c.frames <- f
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return c
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	if err := c.conn.WriteJSON(v); err != nil {
		c.t.Fatal(err)
	}
}

// expect reads frames until one matches, failing after 10 s.
func (c *wsClient) expect(what string, match func(frameMsg) bool) frameMsg {
	c.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				c.t.Fatalf("connection closed while waiting for %s: %v", what, <-c.closed)
			}
			if match(f) {
				return f
			}
		case <-timeout:
			c.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// quiet fails if a frame matching match arrives within d.
func (c *wsClient) quiet(d time.Duration, what string, match func(frameMsg) bool) {
	c.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case f, ok := <-c.frames:
			if ok && match(f) {
				c.t.Fatalf("unexpected %s: %+v", what, f)
			}
		case <-deadline:
			return
		}
	}
}

func (c *wsClient) botReply(t *testing.T) chatMsg {
	t.Helper()
	f := c.expect("a bot message", func(f frameMsg) bool {
		return f.Type == "message" && f.chat(t).Role == "bot"
	})
	return f.chat(t)
}

func postJSON(t *testing.T, url, bearer string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case string:
		rd = strings.NewReader(b)
	default:
		buf, _ := json.Marshal(b)
		rd = bytes.NewReader(buf)
	}
	req, _ := http.NewRequest(http.MethodPost, url, rd)
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return do(t, req)
}

func getJSON(t *testing.T, url, bearer string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

func newSession(t *testing.T, base string) (int64, string) {
	t.Helper()
	code, body := postJSON(t, base+"/api/sessions", "", map[string]string{"channel": "web"})
	if code != http.StatusCreated {
		t.Fatalf("POST /api/sessions = %d %v", code, body)
	}
	return int64(body["session_id"].(float64)), body["token"].(string)
}

func agentLogin(t *testing.T, m *Main) string {
	t.Helper()
	code, body := postJSON(t, m.URL+"/api/agent/login", "", map[string]string{"email": DemoAgentEmail, "password": m.Config.DemoPassword})
	if code != http.StatusOK {
		t.Fatalf("login = %d %v", code, body)
	}
	return body["token"].(string)
}

// TestEndToEnd walks a whole conversation through the real server: greeting, knowledge
// answers with citations in Chinese and English, a request for a person, the agent's console,
// the bot's silence, and the close.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	m := startMain(t)
	id, token := newSession(t, m.URL)

	agent := dial(t, m.URL, "/ws/agent")
	agent.send(map[string]any{"type": "hello", "token": agentLogin(t, m)})
	agent.expect("agent welcome", func(f frameMsg) bool { return f.Type == "welcome" })

	cust := dial(t, m.URL, "/ws/customer")
	cust.send(map[string]any{"type": "hello", "session_id": id, "token": token})
	w := cust.expect("welcome", func(f frameMsg) bool { return f.Type == "welcome" })
	if len(w.Messages) != 1 || w.Messages[0].Role != "bot" || w.Session.State != "bot" {
		t.Fatalf("welcome = %+v", w)
	}

	cust.send(map[string]any{"type": "message", "client_id": "c1", "text": "你好"})
	ack := cust.expect("ack", func(f frameMsg) bool { return f.Type == "ack" })
	if ack.ClientID != "c1" || ack.Seq != 2 {
		t.Fatalf("ack = %+v", ack)
	}
	if r := cust.botReply(t); r.Meta.Intent != "greeting" || !strings.Contains(r.Text, "您好") {
		t.Fatalf("greeting reply = %+v", r)
	}

	for _, tt := range []struct{ q, key, lang, want string }{
		{"退款多久到账？", "refund-time", "zh", "工作日"},
		{"How long does shipping take?", "shipping-time", "en", "24 hours"},
	} {
		cust.send(map[string]any{"type": "message", "client_id": "q-" + tt.key, "text": tt.q})
		r := cust.botReply(t)
		if len(r.Meta.Sources) != 1 || r.Meta.Sources[0].Key != tt.key || r.Meta.Sources[0].Language != tt.lang ||
			r.Meta.Sources[0].Title == "" || !strings.Contains(r.Text, tt.want) {
			t.Fatalf("answer to %q = %+v, want entry %s in %s", tt.q, r, tt.key, tt.lang)
		}
	}

	cust.send(map[string]any{"type": "message", "client_id": "c-human", "text": "转人工"})
	if r := cust.botReply(t); r.Meta.Reason != "customer_asked" {
		t.Fatalf("escalation reply = %+v", r)
	}
	a := agent.expect("assignment", func(f frameMsg) bool { return f.Type == "assigned" })
	if a.Assignment.SessionID != id || a.Assignment.Reason != "customer_asked" || len(a.Messages) < 9 {
		t.Fatalf("assignment = %+v with %d messages", a.Assignment, len(a.Messages))
	}
	var sawIntent, sawSource bool
	for _, m := range a.Messages {
		sawIntent = sawIntent || (m.Role == "customer" && m.Meta.Intent == "refund")
		sawSource = sawSource || len(m.Meta.Sources) > 0
	}
	if !sawIntent || !sawSource {
		t.Fatalf("the agent's transcript lacks the bot's context (intent %v, sources %v)", sawIntent, sawSource)
	}
	cust.expect("agent joined", func(f frameMsg) bool { return f.Type == "message" && f.chat(t).Meta.Event == "agent_joined" })
	cust.expect("state agent", func(f frameMsg) bool { return f.Type == "state" && f.State == "agent" })

	agent.send(map[string]any{"type": "reply", "session_id": id, "client_id": "a1", "text": "您好，我是客服小王"})
	agent.expect("agent ack", func(f frameMsg) bool { return f.Type == "ack" && f.ClientID == "a1" })
	got := cust.expect("agent reply", func(f frameMsg) bool { return f.Type == "message" && f.chat(t).Role == "agent" })
	if got.chat(t).Text != "您好，我是客服小王" {
		t.Fatalf("agent reply = %+v", got.chat(t))
	}

	cust.send(map[string]any{"type": "message", "client_id": "c-while-agent", "text": "我的订单到哪了"})
	agent.expect("customer message at the agent", func(f frameMsg) bool {
		return f.Type == "message" && f.chat(t).ClientID == "c-while-agent"
	})
	cust.quiet(1500*time.Millisecond, "bot message while an agent owns the session", func(f frameMsg) bool {
		return f.Type == "message" && f.chat(t).Role == "bot"
	})

	agent.send(map[string]any{"type": "close", "session_id": id})
	agent.expect("closed", func(f frameMsg) bool { return f.Type == "closed" && f.SessionID == id })
	cust.expect("agent closed", func(f frameMsg) bool { return f.Type == "message" && f.chat(t).Meta.Event == "agent_closed" })
	cust.send(map[string]any{"type": "message", "client_id": "c-after", "text": "谢谢"})
	if r := cust.botReply(t); r.Meta.Intent != "thanks" {
		t.Fatalf("bot did not return after close: %+v", r)
	}

	// The agent can no longer write to the closed conversation.
	agent.send(map[string]any{"type": "reply", "session_id": id, "client_id": "a2", "text": "late"})
	if e := agent.expect("error", func(f frameMsg) bool { return f.Type == "error" }); e.Code != "not_found" {
		t.Fatalf("reply after close = %+v", e)
	}

	// A reconnecting customer gets exactly what it missed.
	again := dial(t, m.URL, "/ws/customer")
	again.send(map[string]any{"type": "hello", "session_id": id, "token": token, "since": 10})
	w = again.expect("welcome", func(f frameMsg) bool { return f.Type == "welcome" })
	if len(w.Messages) == 0 || w.Messages[0].Seq != 11 {
		t.Fatalf("resume since 10 gave %d messages starting at %+v", len(w.Messages), w.Messages)
	}
	code, body := getJSON(t, fmt.Sprintf("%s/api/sessions/%d/messages", m.URL, id), token)
	if code != http.StatusOK || len(body["messages"].([]any)) != int(w.Messages[len(w.Messages)-1].Seq) {
		t.Fatalf("GET messages = %d with %d messages", code, len(body["messages"].([]any)))
	}
}

// TestRepeatedLowConfidence: two messages the bot cannot answer bring in a person.
func TestRepeatedLowConfidence(t *testing.T) {
	t.Parallel()
	m := startMain(t)
	id, token := newSession(t, m.URL)
	cust := dial(t, m.URL, "/ws/customer")
	cust.send(map[string]any{"type": "hello", "session_id": id, "token": token})
	cust.expect("welcome", func(f frameMsg) bool { return f.Type == "welcome" })
	cust.send(map[string]any{"type": "message", "client_id": "1", "text": "what's the weather like on Mars"})
	if r := cust.botReply(t); r.Meta.Reason != "" {
		t.Fatalf("escalated after one miss: %+v", r)
	}
	cust.send(map[string]any{"type": "message", "client_id": "2", "text": "tell me a joke"})
	if r := cust.botReply(t); r.Meta.Reason != "low_confidence" {
		t.Fatalf("second miss = %+v, want escalation", r)
	}
	s := cust.expect("queued state", func(f frameMsg) bool { return f.Type == "state" })
	if s.State != "queued" || s.Position != 1 {
		t.Fatalf("state = %+v, want queued at 1", s)
	}
}

// TestBadInput: malformed, unauthorised, unknown and oversized input gets a clear error, the
// connection survives where it can, and no stored message is lost.
func TestBadInput(t *testing.T) {
	t.Parallel()
	m := startMain(t)
	id, token := newSession(t, m.URL)
	c := dial(t, m.URL, "/ws/customer")
	errorFrame := func(what string) frameMsg {
		return c.expect(what, func(f frameMsg) bool { return f.Type == "error" })
	}

	if err := c.conn.WriteMessage(websocket.TextMessage, []byte("not json")); err != nil {
		t.Fatal(err)
	}
	if e := errorFrame("malformed"); e.Code != "invalid" {
		t.Fatalf("malformed frame: %+v", e)
	}
	c.send(map[string]any{"type": "message", "text": "hi"})
	if e := errorFrame("before hello"); e.Code != "unauthorized" {
		t.Fatalf("message before hello: %+v", e)
	}
	c.send(map[string]any{"type": "hello", "session_id": 999999, "token": token})
	if e := errorFrame("unknown session"); e.Code != "not_found" {
		t.Fatalf("unknown session: %+v", e)
	}
	c.send(map[string]any{"type": "hello", "session_id": id, "token": "wrong"})
	if e := errorFrame("wrong token"); e.Code != "not_found" {
		t.Fatalf("wrong token: %+v", e)
	}
	c.send(map[string]any{"type": "hello", "session_id": id, "token": token})
	c.expect("welcome", func(f frameMsg) bool { return f.Type == "welcome" })
	c.send(map[string]any{"type": "bogus"})
	if e := errorFrame("unknown type"); e.Code != "invalid" {
		t.Fatalf("unknown type: %+v", e)
	}
	c.send(map[string]any{"type": "message", "client_id": "big", "text": strings.Repeat("长", 2000)})
	if e := errorFrame("oversized message"); e.Code != "too_large" || e.ClientID != "big" {
		t.Fatalf("oversized message: %+v", e)
	}
	c.send(map[string]any{"type": "message", "client_id": "ok-1", "text": "运费多少"})
	c.expect("ack", func(f frameMsg) bool { return f.Type == "ack" && f.ClientID == "ok-1" && !f.Duplicate })
	c.send(map[string]any{"type": "message", "client_id": "ok-1", "text": "运费多少"})
	c.expect("duplicate ack", func(f frameMsg) bool { return f.Type == "ack" && f.ClientID == "ok-1" && f.Duplicate })

	// A frame over the limit closes the connection with 1009; the data survives. The server
	// closes as soon as it reads the frame's header, so the client may still be writing the
	// frame and see its connection reset instead of reading the close frame.
	writeErr := c.conn.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("x"), 70<<10))
	for range c.frames {
	}
	if err := <-c.closed; !websocket.IsCloseError(err, websocket.CloseMessageTooBig) && writeErr == nil {
		t.Fatalf("oversized frame closed with %v, want 1009", err)
	}
	c2 := dial(t, m.URL, "/ws/customer")
	c2.send(map[string]any{"type": "hello", "session_id": id, "token": token})
	w := c2.expect("welcome", func(f frameMsg) bool { return f.Type == "welcome" })
	if n := len(w.Messages); n != 3 || w.Messages[1].ClientID != "ok-1" {
		t.Fatalf("after the oversized frame the session has %d messages: %+v", n, w.Messages)
	}

	// REST errors.
	for _, tt := range []struct {
		name, method, path, bearer, body string
		status                           int
		code                             string
	}{
		{"malformed json", "POST", "/api/sessions", "", "{nope", 400, "invalid"},
		{"unknown field", "POST", "/api/sessions", "", `{"colour":"red"}`, 400, "invalid"},
		{"huge body", "POST", "/api/sessions", "", `{"channel":"` + strings.Repeat("x", 70<<10) + `"}`, 413, "too_large"},
		{"bad login", "POST", "/api/agent/login", "", `{"email":"agent@kefu.local","password":"nope"}`, 401, "unauthorized"},
		{"no agent token", "GET", "/api/agent/me", "", "", 401, "unauthorized"},
		{"wrong session token", "GET", fmt.Sprintf("/api/sessions/%d/messages", id), "nope", "", 404, "not_found"},
		{"bad id", "GET", "/api/sessions/abc/messages", token, "", 400, "invalid"},
		{"no route", "GET", "/api/nothing", "", "", 404, "not_found"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var code int
			var body map[string]any
			if tt.method == "POST" {
				code, body = postJSON(t, m.URL+tt.path, tt.bearer, tt.body)
			} else {
				code, body = getJSON(t, m.URL+tt.path, tt.bearer)
			}
			e, _ := body["error"].(map[string]any)
			if code != tt.status || e == nil || e["code"] != tt.code || e["message"] == "" {
				t.Fatalf("%s %s = %d %v, want %d %s", tt.method, tt.path, code, body, tt.status, tt.code)
			}
		})
	}
	if !waitReady(m.URL, 15*time.Second) {
		t.Fatal("/readyz did not say ready in 15 s")
	}
}

// waitReady polls base's /readyz until it answers 200 (true) or within has passed (false).
// An instance is ready once its database answers, its models are loaded and its Chinese
// dictionary has warmed up (a second or two after start).
func waitReady(base string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for {
		if res, err := http.Get(base + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return true
			}
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestFlowThroughServer: a flow's webhooks reach the binary's own demo order service (signed,
// on ${KEFU_URL}), and a reconnecting customer gets the messages they missed.
func TestFlowThroughServer(t *testing.T) {
	t.Parallel()
	m := startMain(t)
	id, token := newSession(t, m.URL)
	cust := dial(t, m.URL, "/ws/customer")
	cust.send(map[string]any{"type": "hello", "session_id": id, "token": token})
	cust.expect("welcome", func(f frameMsg) bool { return f.Type == "welcome" })
	steps := []struct{ say, want string }{
		{"我要退款", "订单号"},
		{"SO20261127001", "退款原因"},
		{"质量问题", "确认为订单 SO20261127001"},
		{"确认", "RF-"},
	}
	for i, s := range steps {
		cust.send(map[string]any{"type": "message", "client_id": fmt.Sprint("f", i), "text": s.say})
		if r := cust.botReply(t); !strings.Contains(r.Text, s.want) {
			t.Fatalf("after %q the bot said %q, want %q", s.say, r.Text, s.want)
		}
	}
	// An unknown order is refused by the demo shop's validator, through the server.
	cust.send(map[string]any{"type": "message", "client_id": "f-x", "text": "帮我查一下订单 SO99999999999 的物流"})
	if r := cust.botReply(t); !strings.Contains(r.Text, "SO99999999999") {
		t.Fatalf("unknown order: the bot said %q", r.Text)
	}
}
