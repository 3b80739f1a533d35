package dialog_test

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/kefu-dev/kefu"
	"github.com/kefu-dev/kefu/dialog"
	"github.com/kefu-dev/kefu/handoff"
	"github.com/kefu-dev/kefu/internal/pgtest"
	"github.com/kefu-dev/kefu/retrieval"
)

type testBundle struct {
	engine *dialog.Engine
	queue  *handoff.Queue
	agents *handoff.Agents
}

func TestEngine(t *testing.T) {
	t.Parallel()
	model := loadModel(t)

	setup := func(t *testing.T) *testBundle {
		t.Helper()
		pool := pgtest.Schema(t, retrieval.Migrations(), handoff.Migrations(), dialog.Migrations())
		log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
		kb := retrieval.NewStore(pool, model, retrieval.DefaultThreshold, log)
		if _, err := kb.SeedDemo(t.Context()); err != nil {
			t.Fatal(err)
		}
		q := handoff.NewQueue(pool, log)
		return &testBundle{engine: dialog.NewEngine(pool, model, kb, q, dialog.Config{}, log), queue: q, agents: handoff.NewAgents(pool, log)}
	}
	newSession := func(t *testing.T, b *testBundle) dialog.Session {
		t.Helper()
		s, token, err := b.engine.CreateSession(t.Context(), "web", "")
		if err != nil || token == "" {
			t.Fatal(err)
		}
		return s
	}
	say := func(t *testing.T, b *testBundle, s dialog.Session, text string) dialog.TurnResult {
		t.Helper()
		res, err := b.engine.Turn(t.Context(), dialog.Inbound{SessionID: s.ID, Text: text})
		if err != nil {
			t.Fatalf("Turn(%q): %v", text, err)
		}
		return res
	}

	t.Run("GreetingKnowledgeHandoffAndBack", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := newSession(t, b)
		if r := say(t, b, s, "你好"); len(r.Replies) != 1 || r.Replies[0].Meta.Intent != "greeting" || r.Session.Language != "zh" {
			t.Fatalf("greeting: %+v", r.Replies)
		}
		r := say(t, b, s, "退款多久到账？")
		if len(r.Replies) != 1 || len(r.Replies[0].Meta.Sources) != 1 || r.Replies[0].Meta.Sources[0].Key != "refund-time" {
			t.Fatalf("knowledge answer: %+v", r.Replies)
		}
		r = say(t, b, s, "how long does shipping take?")
		if len(r.Replies) != 1 || len(r.Replies[0].Meta.Sources) != 1 || r.Replies[0].Meta.Sources[0].Language != "en" {
			t.Fatalf("english knowledge answer: %+v", r.Replies)
		}
		r = say(t, b, s, "转人工")
		if !r.Escalated || r.Session.State != dialog.StateQueued || r.Replies[0].Meta.Reason != dialog.ReasonCustomerAsked {
			t.Fatalf("escalation: %+v %+v", r.Session, r.Replies)
		}
		if r := say(t, b, s, "还在吗"); len(r.Replies) != 0 {
			t.Fatalf("bot spoke while queued: %+v", r.Replies)
		}
		ag, err := b.agents.Create(t.Context(), handoff.Agent{Email: "a@x.io", Name: "A"}, "password123")
		if err != nil {
			t.Fatal(err)
		}
		if err := b.agents.SetStatus(t.Context(), ag.ID, handoff.Online); err != nil {
			t.Fatal(err)
		}
		b.queue.SetOwner(b.engine, nil)
		as, err := b.queue.Route(t.Context())
		if err != nil || len(as) != 1 || as[0].SessionID != s.ID {
			t.Fatalf("Route = %+v, %v", as, err)
		}
		if r := say(t, b, s, "我的订单到哪了"); len(r.Replies) != 0 || r.Session.State != dialog.StateAgent {
			t.Fatalf("bot spoke while an agent owns the session: %+v", r.Replies)
		}
		if _, _, err := b.engine.AgentReply(t.Context(), ag.ID+1, s.ID, "", "hi"); kefu.CodeOf(err) != kefu.NotFound {
			t.Fatalf("reply by another agent: %v, want not_found", err)
		}
		m, _, err := b.engine.AgentReply(t.Context(), ag.ID, s.ID, "c1", "您好，我来帮您查")
		if err != nil || m.Role != dialog.RoleAgent {
			t.Fatalf("AgentReply = %+v, %v", m, err)
		}
		if _, err := b.engine.CloseByAgent(t.Context(), ag.ID, s.ID, ""); err != nil {
			t.Fatal(err)
		}
		if r := say(t, b, s, "谢谢"); len(r.Replies) != 1 || r.Session.State != dialog.StateBot {
			t.Fatalf("bot did not come back after close: %+v", r)
		}
		msgs, err := b.engine.Messages(t.Context(), s.ID, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range msgs {
			if m.Seq != int64(i+1) {
				t.Fatalf("message %d has seq %d", i, m.Seq)
			}
		}
		roles := map[string]int{}
		for _, m := range msgs {
			roles[m.Role]++
		}
		if roles[dialog.RoleAgent] != 1 || roles[dialog.RoleSystem] != 2 || roles[dialog.RoleCustomer] != 7 {
			t.Fatalf("transcript roles = %v", roles)
		}
	})

	t.Run("RepeatedLowConfidenceEscalates", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := newSession(t, b)
		r := say(t, b, s, "今天天气怎么样")
		if r.Escalated || len(r.Replies) != 1 || len(r.Replies[0].Meta.QuickReplies) == 0 {
			t.Fatalf("first miss: %+v", r)
		}
		r = say(t, b, s, "给我讲个笑话吧")
		if !r.Escalated || r.Replies[0].Meta.Reason != dialog.ReasonLowConfidence {
			t.Fatalf("second miss did not escalate: %+v", r)
		}
	})

	t.Run("EntitiesStoredWithTheMessage", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := newSession(t, b)
		r := say(t, b, s, "订单号 SO20261127001 还没到，电话 13812345678")
		types := map[string]string{}
		for _, e := range r.Customer.Meta.Entities {
			types[e.Type] = e.Value
		}
		if types["order_number"] != "SO20261127001" || types["phone"] != "+8613812345678" {
			t.Fatalf("entities = %+v", r.Customer.Meta.Entities)
		}
		msgs, err := b.engine.Messages(t.Context(), s.ID, 1, 1)
		if err != nil || len(msgs) != 1 || len(msgs[0].Meta.Entities) != 2 {
			t.Fatalf("stored entities = %+v, %v", msgs, err)
		}
	})

	t.Run("ResendIsIdempotent", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := newSession(t, b)
		in := dialog.Inbound{SessionID: s.ID, ClientID: "m-1", Text: "hello"}
		first, err := b.engine.Turn(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		again, err := b.engine.Turn(t.Context(), in)
		if err != nil || !again.Duplicate || again.Customer.Seq != first.Customer.Seq {
			t.Fatalf("resend = %+v, %v", again, err)
		}
	})

	t.Run("BadInput", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := newSession(t, b)
		tests := []struct {
			in   dialog.Inbound
			code kefu.Code
		}{
			{dialog.Inbound{SessionID: s.ID, Text: "   "}, kefu.Invalid},
			{dialog.Inbound{SessionID: s.ID, Text: strings.Repeat("长", 2000)}, kefu.TooLarge},
			{dialog.Inbound{SessionID: s.ID, Text: "ok", ClientID: strings.Repeat("x", 65)}, kefu.Invalid},
			{dialog.Inbound{SessionID: s.ID, Text: "bad \xff utf8"}, kefu.Invalid},
			{dialog.Inbound{SessionID: 987654321, Text: "hello"}, kefu.NotFound},
		}
		for _, tt := range tests {
			if _, err := b.engine.Turn(t.Context(), tt.in); kefu.CodeOf(err) != tt.code {
				t.Errorf("Turn(%.20q) = %v, want %s", tt.in.Text, err, tt.code)
			}
		}
		if _, err := b.engine.Authorize(t.Context(), s.ID, "wrong"); kefu.CodeOf(err) != kefu.NotFound {
			t.Errorf("Authorize with a wrong token = %v, want not_found", err)
		}
		msgs, _ := b.engine.Messages(t.Context(), s.ID, 0, 0)
		if len(msgs) != 1 {
			t.Errorf("bad input stored messages: %d, want only the welcome", len(msgs))
		}
	})

	// Messages arriving together for one session are processed one at a time: every turn
	// commits, and seqs stay dense and ordered.
	t.Run("ConcurrentTurnsOneWriter", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := newSession(t, b)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				_, err := b.engine.Turn(t.Context(), dialog.Inbound{SessionID: s.ID, ClientID: fmt.Sprint("c", i), Text: "运费多少"})
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		msgs, err := b.engine.Messages(t.Context(), s.ID, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 1+8*2 {
			t.Fatalf("%d messages, want %d", len(msgs), 1+8*2)
		}
		for i, m := range msgs {
			if m.Seq != int64(i+1) {
				t.Fatalf("seq %d at %d", m.Seq, i)
			}
			if i > 0 && m.Role == dialog.RoleBot && msgs[i-1].Role != dialog.RoleCustomer {
				t.Fatalf("reply at seq %d does not follow its question", m.Seq)
			}
		}
	})
}
