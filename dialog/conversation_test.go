package dialog_test

import (
	"log/slog"
	"net/http/httptest"
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
