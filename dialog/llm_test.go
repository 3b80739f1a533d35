package dialog_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kefu-dev/kefu/dialog"
	"github.com/kefu-dev/kefu/dialog/demoshop"
	"github.com/kefu-dev/kefu/handoff"
	"github.com/kefu-dev/kefu/internal/openaitest"
	"github.com/kefu-dev/kefu/internal/pgtest"
	"github.com/kefu-dev/kefu/retrieval"
)

// groundedReply answers from the prompt's first passage, as a well-behaved model would: its
// first sentence, cited, in a few chunks.
func groundedReply(r openaitest.ChatRequest) openaitest.Reply {
	user := r.Message("user")
	_, after, ok := strings.Cut(user, "\n[1] ")
	if !ok {
		return openaitest.Reply{Status: http.StatusBadRequest}
	}
	lines := strings.SplitN(after, "\n", 3) // title, text, rest
	first, _, _ := strings.Cut(lines[1], "。")
	first, _, _ = strings.Cut(first, ". ")
	return openaitest.Reply{Chunks: []string{"According to our help centre: ", first, " [1]", "."}}
}

// TestLLMAnswers runs the demo bot with an LLM behind a real HTTP server speaking the OpenAI
// API: knowledge answers are worded by it and streamed, and everything else (not sure, tasks,
// digressions, resends, refusals, failures) goes as without it.
func TestLLMAnswers(t *testing.T) {
	t.Parallel()
	model := loadModel(t)

	type bundle struct {
		engine *dialog.Engine
		llm    *openaitest.Server
	}
	setup := func(t *testing.T) *bundle {
		t.Helper()
		pool := pgtest.Schema(t, retrieval.Migrations(), handoff.Migrations(), dialog.Migrations())
		log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
		kb := retrieval.NewStore(pool, model, retrieval.DefaultThreshold, log)
		if _, err := kb.SeedDemo(t.Context()); err != nil {
			t.Fatal(err)
		}
		secret := []byte("llm-test-secret")
		shop := httptest.NewServer(demoshop.New(secret, log).Handler())
		t.Cleanup(shop.Close)
		flows, err := dialog.LoadFlows("flows", model.Labels())
		if err != nil {
			t.Fatal(err)
		}
		llm := openaitest.New(t, "sk-llm-test-key-0123456789")
		llm.Chat = groundedReply
		gen, err := retrieval.NewGenerator(retrieval.GeneratorConfig{BaseURL: llm.BaseURL(), APIKey: "sk-llm-test-key-0123456789", Model: "chat-test"})
		if err != nil {
			t.Fatal(err)
		}
		e := dialog.NewEngine(pool, model, kb, handoff.NewQueue(pool, log), dialog.Config{
			EscalateAfter: 3, Flows: flows, Webhooks: &dialog.WebhookClient{Secret: secret, Log: log},
			Vars: map[string]string{"KEFU_URL": shop.URL}, Generator: gen, GenerateTimeout: 5 * time.Second,
		}, log)
		return &bundle{engine: e, llm: llm}
	}
	newSession := func(t *testing.T, b *bundle) dialog.Session {
		t.Helper()
		s, _, err := b.engine.CreateSession(t.Context(), "web", "")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// say runs a turn and returns it with the deltas streamed during it.
	say := func(t *testing.T, b *bundle, s dialog.Session, clientID, text string) (dialog.TurnResult, []string) {
		t.Helper()
		var deltas []string
		res, err := b.engine.Turn(t.Context(), dialog.Inbound{SessionID: s.ID, ClientID: clientID, Text: text,
			OnDelta: func(d string) { deltas = append(deltas, d) }})
		if err != nil {
			t.Fatalf("Turn(%q): %v", text, err)
		}
		return res, deltas
	}

	t.Run("StreamsGroundedAnswerAndStoresHowItWasMade", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := newSession(t, b)
		res, deltas := say(t, b, s, "c-1", "how long does shipping take?")
		if len(res.Replies) != 1 {
			t.Fatalf("replies = %+v", res.Replies)
		}
		r := res.Replies[0]
		want := "According to our help centre: In-stock items ship within 24 hours of payment, weekends and holidays included [1]."
		if r.Body != want || strings.Join(deltas, "") != want || len(deltas) != 4 {
			t.Fatalf("reply %q, deltas %q; want %q in 4 deltas", r.Body, deltas, want)
		}
		llm := r.Meta.LLM
		if llm == nil || llm.Model != "chat-test" || len(llm.Prompt) != 2 || !strings.Contains(llm.Prompt[1].Content, "how long does shipping take?") ||
			!strings.Contains(llm.Prompt[0].Content, "English") {
			t.Fatalf("meta.llm = %+v", llm)
		}
		if len(r.Meta.Sources) != 1 || r.Meta.Sources[0].Key != "shipping-time" || len(llm.Passages) == 0 || llm.Passages[0] != r.Meta.Sources[0].EntryID {
			t.Fatalf("sources %+v, passages %v", r.Meta.Sources, llm.Passages)
		}
		if n := len(b.llm.Chats()); n != 1 {
			t.Fatalf("%d LLM calls, want 1", n)
		}
		// What is stored is what was sent.
		msgs, err := b.engine.Messages(t.Context(), s.ID, r.Seq-1, 1)
		if err != nil || len(msgs) != 1 {
			t.Fatal(msgs, err)
		}
		if m := msgs[0]; m.Body != want || m.Meta.LLM == nil || m.Meta.LLM.Prompt[0].Content != llm.Prompt[0].Content ||
			len(m.Meta.LLM.Passages) != len(llm.Passages) || len(m.Meta.Sources) != 1 {
			t.Fatalf("stored reply = %+v", m)
		}
		// A resend of the same message is not answered again.
		again, deltas := say(t, b, s, "c-1", "how long does shipping take?")
		if !again.Duplicate || len(deltas) != 0 || len(b.llm.Chats()) != 1 {
			t.Fatalf("resend: duplicate %v, deltas %q, %d LLM calls", again.Duplicate, deltas, len(b.llm.Chats()))
		}
		// Chinese question, Chinese answer asked for.
		res, deltas = say(t, b, s, "c-2", "退款多久到账？")
		if len(res.Replies) != 1 || res.Replies[0].Meta.LLM == nil || len(deltas) == 0 ||
			!strings.Contains(res.Replies[0].Meta.LLM.Prompt[0].Content, "Chinese") || res.Replies[0].Meta.Sources[0].Key != "refund-time" {
			t.Fatalf("zh answer: %+v, deltas %q", res.Replies, deltas)
		}
	})

	t.Run("NotSureNeverAsksTheLLM", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := newSession(t, b)
		res, deltas := say(t, b, s, "", "今天天气怎么样")
		if len(res.Replies) != 1 || !strings.HasPrefix(res.Replies[0].Meta.Event, "fallback") || res.Replies[0].Meta.LLM != nil {
			t.Fatalf("off-topic reply: %+v", res.Replies)
		}
		if len(deltas) != 0 || b.llm.Requests() != 0 {
			t.Fatalf("off-topic: deltas %q, %d LLM requests", deltas, b.llm.Requests())
		}
	})

	t.Run("TasksAndDigressionsGoWithoutIt", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := newSession(t, b)
		res, deltas := say(t, b, s, "", "我要退款")
		if len(res.Replies) == 0 || res.Replies[0].Meta.Flow != "refund_request" || len(deltas) != 0 {
			t.Fatalf("task: %+v, deltas %q", res.Replies, deltas)
		}
		res, deltas = say(t, b, s, "", "退款多久到账？")
		if len(res.Replies) == 0 || res.Replies[0].Meta.Event != "digression" || res.Replies[0].Meta.LLM != nil || len(deltas) != 0 {
			t.Fatalf("digression: %+v, deltas %q", res.Replies, deltas)
		}
		if n := b.llm.Requests(); n != 0 {
			t.Fatalf("%d LLM requests during a task", n)
		}
	})

	t.Run("RefusalAndFailureFallBackToTheEntry", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := newSession(t, b)
		for i, reply := range []openaitest.Reply{{Chunks: []string{"NO_", "ANSWER"}}, {Status: http.StatusInternalServerError}} {
			b.llm.SetChat(func(openaitest.ChatRequest) openaitest.Reply { return reply })
			res, deltas := say(t, b, s, "", "how long does shipping take?")
			if len(res.Replies) != 1 {
				t.Fatalf("case %d: replies %+v", i, res.Replies)
			}
			r := res.Replies[0]
			if r.Meta.LLM != nil || !strings.HasPrefix(r.Body, "In-stock items ship within 24 hours") || len(r.Meta.Sources) != 1 ||
				r.Meta.Sources[0].Key != "shipping-time" || len(deltas) != 0 {
				t.Fatalf("case %d: reply %+v, deltas %q: want the entry's own text with its source", i, r, deltas)
			}
			if n := len(b.llm.Chats()); n != i+1 {
				t.Fatalf("case %d: %d LLM calls", i, n)
			}
		}
	})
}
