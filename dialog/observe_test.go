package dialog_test

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kefu-dev/kefu/dialog"
	"github.com/kefu-dev/kefu/handoff"
	"github.com/kefu-dev/kefu/internal/pgtest"
	"github.com/kefu-dev/kefu/nlu"
	"github.com/kefu-dev/kefu/retrieval"
)

type outOfScope struct{}

func (outOfScope) Understand(context.Context, string) (nlu.Result, error) {
	return nlu.Result{OutOfScope: true, Language: "en"}, nil
}

type knowsNothing struct{}

func (knowsNothing) Answer(context.Context, string, string) (retrieval.Answer, error) {
	return retrieval.Answer{}, nil
}

func (knowsNothing) AnswerTx(context.Context, pgx.Tx, string, string) (retrieval.Answer, error) {
	return retrieval.Answer{}, nil
}

// TestObserve: a turn tells Config.Observe how long its understanding, its knowledge search
// and the whole turn took.
func TestObserve(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t, retrieval.Migrations(), handoff.Migrations(), dialog.Migrations())
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	var mu sync.Mutex
	var stages []string
	observe := func(stage string, d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if d < 0 {
			t.Errorf("stage %s took %v", stage, d)
		}
		stages = append(stages, stage)
	}
	e := dialog.NewEngine(pool, outOfScope{}, knowsNothing{}, handoff.NewQueue(pool, log), dialog.Config{Observe: observe}, log)
	s, _, err := e.CreateSession(t.Context(), "web", "en")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Turn(t.Context(), dialog.Inbound{SessionID: s.ID, Text: "how long does shipping take?"}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(stages, []string{"nlu", "retrieval", "turn"}) {
		t.Fatalf("observed %v, want [nlu retrieval turn]", stages)
	}
}
