package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kefu-dev/kefu/dialog"
	"github.com/kefu-dev/kefu/handoff"
	"github.com/kefu-dev/kefu/internal/pgtest"
	"github.com/kefu-dev/kefu/nlu"
	"github.com/kefu-dev/kefu/retrieval"
)

// TestCustomerProfile: the embedding site's profile of a customer, signed or not, when the
// session is created and in the hello frame.
func TestCustomerProfile(t *testing.T) {
	t.Parallel()
	secret := []byte("site-secret")
	vip := handoff.Profile{Name: "李雷", Email: "li@example.com", Tier: "vip"}

	type testBundle struct {
		url    string
		engine *dialog.Engine
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		pool := pgtest.Schema(t, retrieval.Migrations(), handoff.Migrations(), dialog.Migrations())
		log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
		q := handoff.NewQueue(pool, log)
		// No model and no knowledge: these tests never run a turn.
		engine := dialog.NewEngine(pool, nil, nil, q, dialog.Config{IdentitySecret: secret}, log)
		ts := httptest.NewServer(New(Deps{Pool: pool, Engine: engine, Queue: q, Log: log}).Handler())
		t.Cleanup(ts.Close)
		return &testBundle{url: ts.URL, engine: engine}
	}
	create := func(t *testing.T, b *testBundle, body string) (int, string) {
		t.Helper()
		res, err := http.Post(b.url+"/api/sessions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		out, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, string(out)
	}
	profileOf := func(t *testing.T, b *testBundle, id int64) handoff.Profile {
		t.Helper()
		s, err := b.engine.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		return s.Profile
	}

	t.Run("CreateSigned", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := `{"channel":"web","language":"zh","profile":{"name":"李雷","email":"li@example.com","tier":"vip"},"signature":"` +
			dialog.SignProfile(secret, vip) + `"}`
		code, out := create(t, b, body)
		if code != http.StatusCreated || !strings.Contains(out, `"verified":true`) {
			t.Fatalf("POST /api/sessions = %d %s, want 201 and verified", code, out)
		}
		id, _ := created(t, out)
		if p := profileOf(t, b, id); !p.VIP() || p.Name != "李雷" {
			t.Fatalf("stored profile %+v, want the verified VIP", p)
		}
	})

	t.Run("CreateUnsigned", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, sig := range []string{"", strings.Repeat("ab", 32), dialog.SignProfile([]byte("other"), vip)} {
			// "verified": true from the client counts for nothing.
			body := `{"profile":{"name":"李雷","email":"li@example.com","tier":"vip","verified":true},"signature":"` + sig + `"}`
			code, out := create(t, b, body)
			if code != http.StatusCreated || !strings.Contains(out, `"verified":false`) {
				t.Fatalf("signature %q: POST /api/sessions = %d %s, want 201 and not verified", sig, code, out)
			}
			id, _ := created(t, out)
			if p := profileOf(t, b, id); p.Verified || p.VIP() || p.Tier != "vip" {
				t.Fatalf("signature %q: stored profile %+v, want kept unverified", sig, p)
			}
		}
	})

	t.Run("CreateBadProfile", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, body := range []string{
			`{"profile":{"nickname":"x"}}`,
			`{"profile":{"name":"` + strings.Repeat("长", 100) + `"}}`,
		} {
			if code, out := create(t, b, body); code != http.StatusBadRequest {
				t.Errorf("POST /api/sessions %.40s… = %d %s, want 400", body, code, out)
			}
		}
	})

	t.Run("Hello", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		code, out := create(t, b, `{"channel":"web"}`)
		if code != http.StatusCreated {
			t.Fatalf("POST /api/sessions = %d %s", code, out)
		}
		id, token := created(t, out)
		hello := func(profile map[string]any, sig string) map[string]any {
			t.Helper()
			ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(b.url, "http")+"/ws/customer", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			f := map[string]any{"type": "hello", "session_id": id, "token": token}
			if profile != nil {
				f["profile"], f["signature"] = profile, sig
			}
			if err := ws.WriteJSON(f); err != nil {
				t.Fatal(err)
			}
			_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				var got map[string]any
				if err := ws.ReadJSON(&got); err != nil {
					t.Fatal(err)
				}
				if got["type"] == "welcome" {
					return got["session"].(map[string]any)["profile"].(map[string]any)
				}
				if got["type"] == "error" {
					t.Fatalf("hello: %v", got)
				}
			}
		}
		claim := map[string]any{"name": "李雷", "email": "li@example.com", "tier": "vip"}
		if p := hello(claim, dialog.SignProfile(secret, vip)); p["verified"] != true || p["tier"] != "vip" {
			t.Fatalf("welcome after a signed hello: profile %v, want verified", p)
		}
		// Someone with the session's token cannot overwrite what the site vouched for.
		if p := hello(map[string]any{"name": "someone", "tier": "vip"}, ""); p["verified"] != true || p["name"] != "李雷" {
			t.Fatalf("welcome after an unsigned hello: profile %v, want the signed one kept", p)
		}
		// A hello without a profile leaves it as it is.
		if p := hello(nil, ""); p["verified"] != true {
			t.Fatalf("welcome after a plain hello: profile %v", p)
		}
		if p := profileOf(t, b, id); !p.VIP() || p.Name != "李雷" {
			t.Fatalf("stored profile %+v", p)
		}
	})
}

// created reads the body of POST /api/sessions.
func created(t *testing.T, body string) (id int64, token string) {
	t.Helper()
	var out struct {
		SessionID int64  `json:"session_id"`
		Token     string `json:"token"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil || out.SessionID == 0 || out.Token == "" {
		t.Fatalf("POST /api/sessions answered %s (%v)", body, err)
	}
	return out.SessionID, out.Token
}

// TestCustomerQueue is the waiting customer's side of the queue: their place and estimated
// wait, stopping waiting, leaving a message when nobody is online, going away, and rating the
// person's help once the conversation is closed.
func TestCustomerQueue(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		url    string
		pool   *pgxpool.Pool
		server *Server
		engine *dialog.Engine
		queue  *handoff.Queue
		agents *handoff.Agents
		desk   *handoff.Desk
		clock  *dialog.Clock
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		pool := pgtest.Schema(t, retrieval.Migrations(), handoff.Migrations(), dialog.Migrations())
		log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
		b := &testBundle{pool: pool, queue: handoff.NewQueue(pool, log), agents: handoff.NewAgents(pool, log),
			desk: handoff.NewDesk(pool), clock: dialog.NewClock(time.Now())}
		b.engine = dialog.NewEngine(pool, smallTalkNLU{}, noKnowledge{}, b.queue, dialog.Config{Now: b.clock.Now}, log)
		b.server = New(Deps{Pool: pool, Engine: b.engine, Queue: b.queue, Agents: b.agents, Desk: b.desk, Log: log})
		b.server.waitRefresh = 100 * time.Millisecond
		b.queue.SetOwner(b.engine, b.server.OnAssigned)
		ts := httptest.NewServer(b.server.Handler())
		t.Cleanup(ts.Close)
		b.url = ts.URL
		return b
	}
	// customer starts a session and opens its WebSocket.
	customer := func(t *testing.T, b *testBundle) *wsCustomer {
		t.Helper()
		res, err := http.Post(b.url+"/api/sessions", "application/json", strings.NewReader(`{"language":"zh"}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		c := &wsCustomer{t: t, url: b.url}
		c.id, c.token = created(t, string(body))
		c.connect()
		return c
	}
	// escalate asks for a person and returns the state frame that follows.
	escalate := func(c *wsCustomer) map[string]any {
		c.t.Helper()
		c.say("转人工")
		return c.expect("the queued state", func(f map[string]any) bool { return f["type"] == "state" && f["state"] == "queued" })
	}
	requestOf := func(t *testing.T, b *testBundle, session int64) (state, disposition string) {
		t.Helper()
		err := b.pool.QueryRow(t.Context(), `SELECT state, coalesce(disposition, '') FROM handoff_request
WHERE session_id = $1 ORDER BY id DESC LIMIT 1`, session).Scan(&state, &disposition)
		if err != nil {
			t.Fatal(err)
		}
		return state, disposition
	}
	online := func(t *testing.T, b *testBundle, email string) handoff.Agent {
		t.Helper()
		ag, err := b.agents.Create(t.Context(), handoff.Agent{Email: email, Name: email, MaxChats: 2}, "password123")
		if err != nil {
			t.Fatal(err)
		}
		if err := b.agents.SetStatus(t.Context(), ag.ID, handoff.Online); err != nil {
			t.Fatal(err)
		}
		return ag
	}

	t.Run("PlaceAndWait", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		first, second := customer(t, b), customer(t, b)
		f := escalate(first)
		if f["position"] != 1.0 || f["online"] != 0.0 || f["wait_seconds"] != 0.0 {
			t.Fatalf("first in the queue, nobody online: state %v, want position 1, online 0, no estimate", f)
		}
		if f := escalate(second); f["position"] != 2.0 {
			t.Fatalf("second in the queue: state %v, want position 2", f)
		}
		// An agent comes online (the router is not running: nobody is assigned): the
		// refreshed frame counts them and estimates the wait, 2 × 180 s over 2 slots.
		online(t, b, "a@kefu.test")
		f = second.expect("a refreshed state with an agent online", func(f map[string]any) bool {
			return f["type"] == "state" && f["online"] == 1.0
		})
		if f["state"] != "queued" || f["position"] != 2.0 || f["wait_seconds"] != 180.0 {
			t.Fatalf("refreshed state %v, want queued at 2, about 180 s", f)
		}
		// A reconnecting customer hears where they stand at once.
		first.ws.Close()
		first.connect()
		if f := first.expect("the state after hello", isState); f["position"] != 1.0 || f["online"] != 1.0 {
			t.Fatalf("state after hello %v, want position 1 with 1 online", f)
		}
		metrics := scrape(t, b.url)
		if want := `kefu_handoff_escalations_total{reason="customer_asked"} 2`; !strings.Contains(metrics, "\n"+want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	})

	t.Run("Abandon", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := customer(t, b)
		escalate(c)
		c.send(map[string]any{"type": "leave_queue"})
		m := c.expectMessage("the abandon message", func(m map[string]any) bool { return meta(m)["event"] == "abandoned" })
		if meta(m)["reason"] != dialog.ReasonCustomerLeft || m["role"] != "system" {
			t.Fatalf("abandon message %v", m)
		}
		c.expect("state bot", func(f map[string]any) bool { return f["type"] == "state" && f["state"] == "bot" })
		if st, _ := requestOf(t, b, c.id); st != "abandoned" {
			t.Fatalf("request state %q, want abandoned", st)
		}
		if want := `kefu_handoff_abandons_total{group="(any)"} 1`; !strings.Contains(scrape(t, b.url), "\n"+want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
		c.say("你好")
		c.expectMessage("the bot's answer", func(m map[string]any) bool {
			return m["role"] == "bot" && m["text"] == "您好！请问有什么可以帮您？"
		})

		// Not waiting any more: a clear 409, over WebSocket and REST, and nothing changes.
		c.send(map[string]any{"type": "leave_queue"})
		if e := c.expect("an error", isError); e["code"] != "conflict" {
			t.Fatalf("leave_queue when not waiting: %v, want conflict", e)
		}
		if code, body := call(t, b.url, "/api/sessions/"+itoa(c.id)+"/abandon", c.token, nil); code != http.StatusConflict {
			t.Fatalf("abandon when not waiting = %d %s, want 409", code, body)
		}
		// REST works too, for the customer's own session only.
		escalate(c)
		other := customer(t, b)
		if code, body := call(t, b.url, "/api/sessions/"+itoa(c.id)+"/abandon", other.token, nil); code != http.StatusNotFound {
			t.Fatalf("abandon with another session's token = %d %s, want 404", code, body)
		}
		if code, body := call(t, b.url, "/api/sessions/"+itoa(c.id)+"/abandon", c.token, nil); code != http.StatusOK ||
			!strings.Contains(string(body), `"event":"abandoned"`) {
			t.Fatalf("abandon = %d %s, want 200 and the message", code, body)
		}
		if want := `kefu_handoff_abandons_total{group="(any)"} 2`; !strings.Contains(scrape(t, b.url), "\n"+want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	})

	t.Run("LeaveMessage", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := customer(t, b)
		path := "/api/sessions/" + itoa(c.id) + "/ticket"
		if code, body := call(t, b.url, path, c.token, map[string]string{"email": "li@example.com", "text": "还没发货"}); code != http.StatusConflict {
			t.Fatalf("a message while talking to the bot = %d %s, want 409", code, body)
		}
		if f := escalate(c); f["online"] != 0.0 {
			t.Fatalf("state %v, want nobody online", f)
		}
		for _, bad := range []map[string]string{
			{"name": "李雷", "text": "还没发货"},                              // no address to answer to
			{"email": "not-an-address", "text": "还没发货"},                 // a bad one
			{"email": "li@example.com", "text": "  "},                   // nothing to say
			{"email": "li@example.com", "text": "x", "phone": "123456"}, // unknown field
		} {
			if code, body := call(t, b.url, path, c.token, bad); code != http.StatusBadRequest {
				t.Fatalf("ticket %v = %d %s, want 400", bad, code, body)
			}
		}
		other := customer(t, b)
		if code, body := call(t, b.url, path, other.token, map[string]string{"email": "li@example.com", "text": "x"}); code != http.StatusNotFound {
			t.Fatalf("ticket with another session's token = %d %s, want 404", code, body)
		}
		if st, _ := requestOf(t, b, c.id); st != "queued" {
			t.Fatalf("after bad tickets the request is %q, want still queued", st)
		}
		code, body := call(t, b.url, path, c.token, map[string]string{"name": "李雷", "email": "li@example.com", "text": "订单还没发货"})
		if code != http.StatusCreated || !strings.Contains(string(body), `"event":"offline_ticket"`) {
			t.Fatalf("ticket = %d %s, want 201 and the message", code, body)
		}
		c.expectMessage("the confirmation", func(m map[string]any) bool { return meta(m)["event"] == "offline_ticket" })
		c.expect("state bot", func(f map[string]any) bool { return f["type"] == "state" && f["state"] == "bot" })
		tickets, err := b.desk.Tickets(t.Context(), "open", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(tickets) != 1 || tickets[0].SessionID != c.id || tickets[0].Email != "li@example.com" || tickets[0].Body != "订单还没发货" ||
			tickets[0].Name != "李雷" || tickets[0].Language != "zh" {
			t.Fatalf("tickets %+v, want the one message", tickets)
		}
		if st, disp := requestOf(t, b, c.id); st != "closed" || disp != "offline_ticket" {
			t.Fatalf("request %s/%s, want closed/offline_ticket", st, disp)
		}
		if code, body := call(t, b.url, path, c.token, map[string]string{"email": "li@example.com", "text": "again"}); code != http.StatusConflict {
			t.Fatalf("a second ticket = %d %s, want 409", code, body)
		}
		c.say("你好")
		c.expectMessage("the bot's answer", func(m map[string]any) bool { return m["role"] == "bot" })
	})

	t.Run("GoneFromTheQueue", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		gone, here := customer(t, b), customer(t, b)
		escalate(gone)
		escalate(here)
		gone.ws.Close()
		b.clock.Advance(3 * time.Minute) // past AbandonAfter (2m), for the customers and since the engine started
		// The connection still open says so on its next refresh.
		for deadline := time.Now().Add(10 * time.Second); ; {
			var seen time.Time
			if err := b.pool.QueryRow(t.Context(), `SELECT last_active_at FROM dialog_session WHERE id = $1`, here.id).Scan(&seen); err != nil {
				t.Fatal(err)
			}
			if !seen.Before(b.clock.Now().Truncate(time.Microsecond)) { // PostgreSQL keeps microseconds
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the connected customer was last seen at %v, want the refresh to have seen them at %v", seen, b.clock.Now())
			}
			time.Sleep(20 * time.Millisecond)
		}
		ms, err := b.engine.Sweep(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 1 || ms[0].SessionID != gone.id || ms[0].Meta.Event != "abandoned" || ms[0].Meta.Reason != dialog.ReasonCustomerGone {
			t.Fatalf("Sweep wrote %+v, want the gone customer's abandonment only", ms)
		}
		b.server.Deliver(ms)
		if st, _ := requestOf(t, b, gone.id); st != "abandoned" {
			t.Fatalf("the gone customer's request is %q, want abandoned", st)
		}
		if st, _ := requestOf(t, b, here.id); st != "queued" {
			t.Fatalf("the connected customer's request is %q, want still queued", st)
		}
		if want := `kefu_handoff_abandons_total{group="(any)"} 1`; !strings.Contains(scrape(t, b.url), "\n"+want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
		// The gone customer comes back and reads why.
		welcome := gone.connect()
		if ms, _ := welcome["messages"].([]any); len(ms) == 0 || meta(ms[len(ms)-1].(map[string]any))["reason"] != dialog.ReasonCustomerGone {
			t.Fatalf("the returning customer's transcript ends with %v, want why they left the queue", ms[len(ms)-1])
		}
		if st := welcome["session"].(map[string]any)["state"]; st != "bot" {
			t.Fatalf("the returning customer's session is %v, want back with the bot", st)
		}
	})

	t.Run("CSAT", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := customer(t, b)
		path := "/api/sessions/" + itoa(c.id) + "/csat"
		five := map[string]any{"score": 5, "comment": "很快 fast"}
		if code, body := call(t, b.url, path, c.token, five); code != http.StatusNotFound {
			t.Fatalf("rating before any conversation with a person = %d %s, want 404", code, body)
		}
		escalate(c)
		ag := online(t, b, "a@kefu.test")
		if _, err := b.queue.Route(t.Context()); err != nil {
			t.Fatal(err)
		}
		c.expect("state agent", func(f map[string]any) bool { return f["type"] == "state" && f["state"] == "agent" })
		if code, body := call(t, b.url, path, c.token, five); code != http.StatusNotFound {
			t.Fatalf("rating while the person is still there = %d %s, want 404", code, body)
		}
		m, err := b.engine.CloseByAgent(t.Context(), ag.ID, c.id, "resolved")
		if err != nil || !m.Meta.Survey {
			t.Fatalf("close: %+v %v", m, err)
		}
		other := customer(t, b)
		for _, tt := range []struct {
			name, path, token string
			body              any
			want              int
		}{
			{"ZeroStars", path, c.token, map[string]any{"score": 0}, http.StatusBadRequest},
			{"SixStars", path, c.token, map[string]any{"score": 6}, http.StatusBadRequest},
			{"NoScore", path, c.token, map[string]any{"comment": "?"}, http.StatusBadRequest},
			{"NotJSON", path, c.token, "five", http.StatusBadRequest},
			{"AnotherSessionsToken", path, other.token, five, http.StatusNotFound},
			{"NoToken", path, "", five, http.StatusNotFound},
			{"UnknownSession", "/api/sessions/999999/csat", c.token, five, http.StatusNotFound},
			{"BadID", "/api/sessions/x/csat", c.token, five, http.StatusBadRequest},
			{"OtherSessionHasNoConversation", "/api/sessions/" + itoa(other.id) + "/csat", other.token, five, http.StatusNotFound},
		} {
			if code, body := call(t, b.url, tt.path, tt.token, tt.body); code != tt.want {
				t.Errorf("%s: POST %s = %d %s, want %d", tt.name, tt.path, code, body, tt.want)
			}
		}
		code, body := call(t, b.url, path, c.token, five)
		if code != http.StatusOK || !strings.Contains(string(body), `"event":"rated"`) {
			t.Fatalf("rating = %d %s, want 200 and the thanks", code, body)
		}
		c.expectMessage("the thanks", func(m map[string]any) bool { return meta(m)["event"] == "rated" })
		if code, body := call(t, b.url, path, c.token, map[string]any{"score": 1}); code != http.StatusConflict {
			t.Fatalf("rating twice = %d %s, want 409", code, body)
		}
		var score int
		var comment string
		if err := b.pool.QueryRow(t.Context(), `SELECT csat, csat_comment FROM handoff_request WHERE session_id = $1`, c.id).Scan(&score, &comment); err != nil ||
			score != 5 || comment != "很快 fast" {
			t.Fatalf("stored rating %d %q (%v), want the first one", score, comment, err)
		}
		if want := `kefu_handoff_csat_ratings_total{score="5"} 1`; !strings.Contains(scrape(t, b.url), "\n"+want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
		// The transcript has the thanks after the survey: a reloading widget does not ask again.
		res, err := http.NewRequest(http.MethodGet, b.url+"/api/sessions/"+itoa(c.id)+"/messages", nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Header.Set("Authorization", "Bearer "+c.token)
		r, err := http.DefaultClient.Do(res)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		var transcript struct{ Messages []dialog.Message }
		if err := json.NewDecoder(r.Body).Decode(&transcript); err != nil {
			t.Fatal(err)
		}
		var survey, rated int64
		for _, m := range transcript.Messages {
			if m.Meta.Survey {
				survey = m.Seq
			}
			if m.Meta.Event == "rated" {
				rated = m.Seq
			}
		}
		if survey == 0 || rated <= survey {
			t.Fatalf("transcript: survey at %d, thanks at %d, want the thanks after the survey", survey, rated)
		}
	})
}

// smallTalkNLU understands greetings and nothing else, in Chinese unless the message is ASCII.
type smallTalkNLU struct{}

func (smallTalkNLU) Understand(_ context.Context, text string) (nlu.Result, error) {
	lang := "en"
	for _, r := range text {
		if r > 127 {
			lang = "zh"
		}
	}
	if strings.Contains(text, "你好") || strings.Contains(strings.ToLower(text), "hello") {
		return nlu.Result{Intent: "greeting", Confidence: 0.99, Language: lang}, nil
	}
	return nlu.Result{Intent: "", OutOfScope: true, Language: lang}, nil
}

// noKnowledge is a knowledge base that knows nothing.
type noKnowledge struct{}

func (noKnowledge) Answer(context.Context, string, string) (retrieval.Answer, error) {
	return retrieval.Answer{}, nil
}

func (noKnowledge) AnswerTx(context.Context, pgx.Tx, string, string) (retrieval.Answer, error) {
	return retrieval.Answer{}, nil
}

// wsCustomer is a customer on the WebSocket, as the widget is.
type wsCustomer struct {
	t         *testing.T
	url       string
	id        int64
	token     string
	ws        *websocket.Conn
	frames    chan map[string]any
	clientSeq int
}

// connect opens a connection, says hello and returns the welcome.
func (c *wsCustomer) connect() map[string]any {
	c.t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(c.url, "http")+"/ws/customer", nil)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { ws.Close() })
	c.ws, c.frames = ws, make(chan map[string]any, 256)
	go func(frames chan<- map[string]any) {
		defer close(frames)
		for {
			var f map[string]any
			if err := ws.ReadJSON(&f); err != nil {
				return
			}
			frames <- f
		}
	}(c.frames)
	c.send(map[string]any{"type": "hello", "session_id": c.id, "token": c.token})
	return c.expect("welcome", func(f map[string]any) bool { return f["type"] == "welcome" })
}

func (c *wsCustomer) send(f map[string]any) {
	c.t.Helper()
	if err := c.ws.WriteJSON(f); err != nil {
		c.t.Fatal(err)
	}
}

func (c *wsCustomer) say(text string) {
	c.t.Helper()
	c.clientSeq++
	c.send(map[string]any{"type": "message", "client_id": "c" + itoa(int64(c.clientSeq)), "text": text})
}

// expect reads frames until one matches, failing after 10 s.
func (c *wsCustomer) expect(what string, match func(map[string]any) bool) map[string]any {
	c.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				c.t.Fatalf("session %d: the connection closed while waiting for %s", c.id, what)
			}
			if match(f) {
				return f
			}
		case <-deadline:
			c.t.Fatalf("session %d: no %s in 10 s", c.id, what)
		}
	}
}

// expectMessage waits for a message frame (or a message in the welcome's backlog) that
// matches.
func (c *wsCustomer) expectMessage(what string, match func(map[string]any) bool) map[string]any {
	c.t.Helper()
	var got map[string]any
	c.expect(what, func(f map[string]any) bool {
		switch f["type"] {
		case "message":
			if m, _ := f["message"].(map[string]any); m != nil && match(m) {
				got = m
			}
		case "welcome":
			ms, _ := f["messages"].([]any)
			for _, x := range ms {
				if m, _ := x.(map[string]any); m != nil && match(m) {
					got = m
				}
			}
		}
		return got != nil
	})
	return got
}

func isState(f map[string]any) bool { return f["type"] == "state" }
func isError(f map[string]any) bool { return f["type"] == "error" }

func meta(m map[string]any) map[string]any {
	mm, _ := m["meta"].(map[string]any)
	return mm
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// call POSTs body (a string as is, anything else as JSON) with the bearer token.
func call(t *testing.T, base, path, token string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader = strings.NewReader("{}")
	switch v := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(v)
	default:
		buf, _ := json.Marshal(v)
		r = bytes.NewReader(buf)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, base+path, r)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res.StatusCode, data
}

// scrape reads /metrics, with a newline first so that every line can be matched as "\n…\n".
func scrape(t *testing.T, base string) string {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return "\n" + string(data)
}
