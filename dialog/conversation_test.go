package dialog_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kefu-dev/kefu/dialog"
	"github.com/kefu-dev/kefu/dialog/demoshop"
	"github.com/kefu-dev/kefu/handoff"
	"github.com/kefu-dev/kefu/internal/pgtest"
	"github.com/kefu-dev/kefu/nlu"
	"github.com/kefu-dev/kefu/retrieval"
)

// shopBot is the demo bot: the real intent model, the demo knowledge base, the demo flows
// and the demo order service, on a clock the test moves.
type shopBot struct {
	pool   *pgxpool.Pool
	engine *dialog.Engine
	clock  *dialog.Clock
	newEng func() *dialog.Engine // another engine on the same database: a restarted server
}

func newShopBot(t *testing.T, model *nlu.Classifier) *shopBot {
	t.Helper()
	pool := pgtest.Schema(t, retrieval.Migrations(), handoff.Migrations(), dialog.Migrations())
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	kb := retrieval.NewStore(pool, model, retrieval.DefaultThreshold, log)
	if _, err := kb.SeedDemo(t.Context()); err != nil {
		t.Fatal(err)
	}
	secret := []byte("conversation-test-secret")
	shop := httptest.NewServer(demoshop.New(secret, log).Handler())
	t.Cleanup(shop.Close)
	flows, err := dialog.LoadFlows("flows", model.Labels())
	if err != nil {
		t.Fatal(err)
	}
	b := &shopBot{pool: pool, clock: dialog.NewClock(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))}
	b.newEng = func() *dialog.Engine {
		return dialog.NewEngine(pool, model, kb, handoff.NewQueue(pool, log), dialog.Config{
			EscalateAfter: 3, Flows: flows, Now: b.clock.Now,
			Webhooks: &dialog.WebhookClient{Secret: secret, Log: log},
			Vars:     map[string]string{"KEFU_URL": shop.URL},
		}, log)
	}
	b.engine = b.newEng()
	return b
}

func loadModel(t *testing.T) *nlu.Classifier {
	t.Helper()
	if err := nlu.InitRuntime(nlu.FindRuntime()); err != nil {
		t.Fatalf("%v (run the tests with scripts/test)", err)
	}
	model, err := nlu.Load("../models/intent")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { model.Close() })
	return model
}

// TestConversations runs the demo bot's conversation tests (dialog/conversations), the same
// files `kefu test conversations` runs.
func TestConversations(t *testing.T) {
	t.Parallel()
	convs, err := dialog.LoadConversations("conversations")
	if err != nil {
		t.Fatal(err)
	}
	if len(convs) < 30 {
		t.Errorf("%d conversation tests, want at least 30", len(convs))
	}
	b := newShopBot(t, loadModel(t))
	for _, c := range convs {
		t.Run(c.Name, func(t *testing.T) {
			r := b.engine.RunConversation(t.Context(), c, b.clock)
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			for _, f := range r.Failures {
				t.Error(f)
			}
		})
	}
}

// TestRestartMidForm: a new engine on the same database (a restarted server, or another
// instance) continues a form where the last turn left it.
func TestRestartMidForm(t *testing.T) {
	t.Parallel()
	b := newShopBot(t, loadModel(t))
	s, _, err := b.engine.CreateSession(t.Context(), "web", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{"我要退款", "SO20261127001"} {
		if _, err := b.engine.Turn(t.Context(), dialog.Inbound{SessionID: s.ID, Text: msg}); err != nil {
			t.Fatal(err)
		}
	}
	restarted := b.newEng()
	r, err := restarted.Turn(t.Context(), dialog.Inbound{SessionID: s.ID, Text: "质量问题"})
	if err != nil {
		t.Fatal(err)
	}
	f := r.Session.Dialog.Flow
	if f == nil || f.Step != "confirm" || f.Slots["order_number"] != "SO20261127001" || f.Slots["reason"] != "quality" {
		t.Fatalf("after the restart the form is at %+v; replies %+v", f, r.Replies)
	}
	if r.Replies[0].Meta.Flow != "refund_request" || r.Replies[0].Meta.FlowVersion != 3 {
		t.Fatalf("reply meta = %+v, want the flow and its version recorded", r.Replies[0].Meta)
	}
}

// TestConcurrentTurnsInAForm: two messages for one session in the middle of a form arrive
// together: both are processed, once each, one after the other, and the form ends in a state
// one of the two orders explains.
func TestConcurrentTurnsInAForm(t *testing.T) {
	t.Parallel()
	b := newShopBot(t, loadModel(t))
	for range 5 {
		s, _, err := b.engine.CreateSession(t.Context(), "web", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.engine.Turn(t.Context(), dialog.Inbound{SessionID: s.ID, Text: "我要退款"}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i, msg := range []string{"SO20261127001", "质量问题"} {
			wg.Go(func() {
				for range 2 { // each sent twice, as a client that resends does
					if _, err := b.engine.Turn(t.Context(), dialog.Inbound{SessionID: s.ID, ClientID: fmt.Sprint("m", i), Text: msg}); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		msgs, err := b.engine.Messages(t.Context(), s.ID, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		customer := 0
		for i, m := range msgs {
			if m.Seq != int64(i+1) {
				t.Fatalf("seq %d at %d", m.Seq, i)
			}
			if m.Role == dialog.RoleCustomer {
				customer++
			}
		}
		if customer != 3 {
			t.Fatalf("%d customer messages stored, want 3", customer)
		}
		got, _ := b.engine.Get(t.Context(), s.ID)
		f := got.Dialog.Flow
		// order number first: reason fills → confirm; reason first: it is not an order
		// number (re-asked), then the order number → ask_reason.
		if f == nil || f.Slots["order_number"] != "SO20261127001" || (f.Step != "confirm" && f.Step != "ask_reason") {
			t.Fatalf("form after two concurrent messages: %+v", f)
		}
	}
}

// TestManyFormsAtOnce: more sessions than pool connections, each in the middle of a form,
// all asking a knowledge question at the same moment. Every turn completes: nothing a turn
// does while it holds its session's lock waits for a second connection from the pool (the
// pool here has 8).
func TestManyFormsAtOnce(t *testing.T) {
	t.Parallel()
	b := newShopBot(t, loadModel(t))
	ids := make([]int64, 24)
	for i := range ids {
		s, _, err := b.engine.CreateSession(t.Context(), "web", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.engine.Turn(t.Context(), dialog.Inbound{SessionID: s.ID, Text: "我要退款"}); err != nil {
			t.Fatal(err)
		}
		ids[i] = s.ID
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			r, err := b.engine.Turn(ctx, dialog.Inbound{SessionID: id, Text: "退款多久到账？"})
			if err != nil {
				t.Errorf("session %d: %v", id, err)
				return
			}
			if len(r.Replies) < 2 || len(r.Replies[0].Meta.Sources) == 0 {
				t.Errorf("session %d: replies %+v, want the answer and the question again", id, r.Replies)
			}
		})
	}
	wg.Wait()
}
