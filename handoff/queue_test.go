package handoff_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kefu-dev/kefu"
	"github.com/kefu-dev/kefu/handoff"
	"github.com/kefu-dev/kefu/internal/pgtest"
)

type testBundle struct {
	pool   *pgxpool.Pool
	queue  *handoff.Queue
	agents *handoff.Agents
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool := pgtest.Schema(t, handoff.Migrations())
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	return &testBundle{pool: pool, queue: handoff.NewQueue(pool, log), agents: handoff.NewAgents(pool, log)}
}

func (b *testBundle) enqueue(t *testing.T, r handoff.Request) {
	t.Helper()
	err := pgx.BeginFunc(t.Context(), b.pool, func(tx pgx.Tx) error {
		_, err := b.queue.Enqueue(t.Context(), tx, r)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (b *testBundle) agent(t *testing.T, email string, maxChats int, langs ...string) handoff.Agent {
	t.Helper()
	a, err := b.agents.Create(t.Context(), handoff.Agent{Email: email, Name: email, MaxChats: maxChats, Languages: langs}, "password123")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.agents.SetStatus(t.Context(), a.ID, handoff.Online); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestQueue(t *testing.T) {
	t.Parallel()

	t.Run("NoOnlineAgentLeavesItQueued", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.enqueue(t, handoff.Request{SessionID: 1, Language: "zh", Reason: "customer_asked"})
		if as, err := b.queue.Route(t.Context()); len(as) != 0 || err != nil {
			t.Fatalf("Route with no agent = %v, %v", as, err)
		}
		if pos, err := b.queue.Position(t.Context(), 1); pos != 1 || err != nil {
			t.Fatalf("Position = %d, %v; want 1", pos, err)
		}
	})

	t.Run("EnqueueTwiceKeepsOneRequest", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.enqueue(t, handoff.Request{SessionID: 9, Reason: "a"})
		b.enqueue(t, handoff.Request{SessionID: 9, Reason: "b"})
		var n int
		if err := b.pool.QueryRow(t.Context(), "SELECT count(*) FROM handoff_request").Scan(&n); err != nil || n != 1 {
			t.Fatalf("%d requests, %v; want 1", n, err)
		}
	})

	t.Run("LanguageAndLeastBusy", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		en := b.agent(t, "en@x.io", 5, "en")
		zh := b.agent(t, "zh@x.io", 5, "zh")
		b.enqueue(t, handoff.Request{SessionID: 1, Language: "zh", Reason: "r"})
		as, err := b.queue.Route(t.Context())
		if err != nil || len(as) != 1 || as[0].AgentID != zh.ID {
			t.Fatalf("zh request went to %+v (%v), want %d", as, err, zh.ID)
		}
		b.enqueue(t, handoff.Request{SessionID: 2, Language: "en", Reason: "r"})
		if as, _ := b.queue.Route(t.Context()); len(as) != 1 || as[0].AgentID != en.ID {
			t.Fatalf("en request went to %+v, want %d", as, en.ID)
		}
	})

	t.Run("HookFailureAssignsNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.agent(t, "a@x.io", 5)
		b.enqueue(t, handoff.Request{SessionID: 3, Reason: "r"})
		b.queue.SetOwner(failingOwner{}, nil)
		as, err := b.queue.Route(t.Context())
		if len(as) != 0 || kefu.CodeOf(err) != kefu.Unavailable {
			t.Fatalf("Route with failing owner = %v, %v", as, err)
		}
		if pos, _ := b.queue.Position(t.Context(), 3); pos != 1 {
			t.Fatalf("request not queued after failed hook: position %d", pos)
		}
	})

	// Many routers racing over many requests: no conversation goes to two agents and no agent
	// exceeds capacity. Run with -race.
	t.Run("ConcurrentRoutersRespectCapacity", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		const agents, capacity, requests = 3, 2, 12
		for i := range agents {
			b.agent(t, fmt.Sprintf("ag%d@x.io", i), capacity)
		}
		for i := range requests {
			b.enqueue(t, handoff.Request{SessionID: int64(100 + i), Reason: "r"})
		}
		var mu sync.Mutex
		got := map[int64]int64{}
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(func() {
				for {
					as, err := b.queue.Route(context.Background())
					if err != nil {
						t.Error(err)
						return
					}
					if len(as) == 0 {
						return
					}
					mu.Lock()
					for _, a := range as {
						if prev, dup := got[a.SessionID]; dup {
							t.Errorf("session %d assigned to %d and %d", a.SessionID, prev, a.AgentID)
						}
						got[a.SessionID] = a.AgentID
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		per := map[int64]int{}
		for _, ag := range got {
			per[ag]++
		}
		for ag, n := range per {
			if n > capacity {
				t.Errorf("agent %d has %d chats, capacity %d", ag, n, capacity)
			}
		}
		if len(got) != agents*capacity {
			t.Errorf("%d assigned, want %d (all capacity used)", len(got), agents*capacity)
		}
	})
}

func TestAgents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := b.agents.Create(t.Context(), handoff.Agent{Email: "Li@Shop.cn", Name: "Li"}, "correct horse"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.agents.Create(t.Context(), handoff.Agent{Email: "li@shop.cn"}, "correct horse"); kefu.CodeOf(err) != kefu.Conflict {
		t.Fatalf("duplicate e-mail: %v, want conflict", err)
	}
	if _, err := b.agents.Create(t.Context(), handoff.Agent{Email: "x@shop.cn"}, "short"); kefu.CodeOf(err) != kefu.Invalid {
		t.Fatalf("short password: %v, want invalid", err)
	}
	if _, _, err := b.agents.Login(t.Context(), "li@shop.cn", "wrong password"); kefu.CodeOf(err) != kefu.Unauthorized {
		t.Fatalf("wrong password: %v, want unauthorized", err)
	}
	if _, _, err := b.agents.Login(t.Context(), "nobody@shop.cn", "correct horse"); kefu.CodeOf(err) != kefu.Unauthorized {
		t.Fatalf("unknown e-mail: %v, want unauthorized", err)
	}
	token, ag, err := b.agents.Login(t.Context(), " LI@shop.cn ", "correct horse")
	if err != nil || token == "" {
		t.Fatalf("Login = %q, %v", token, err)
	}
	got, err := b.agents.Authenticate(t.Context(), token)
	if err != nil || got.ID != ag.ID {
		t.Fatalf("Authenticate = %+v, %v", got, err)
	}
	if _, err := b.agents.Authenticate(t.Context(), token+"x"); kefu.CodeOf(err) != kefu.Unauthorized {
		t.Fatalf("bad token: %v, want unauthorized", err)
	}
	if err := b.agents.SetStatus(t.Context(), 999999, handoff.Online); kefu.CodeOf(err) != kefu.NotFound {
		t.Fatalf("unknown agent: %v, want not_found", err)
	}
	max, langs, caps := 7, []string{"zh", "en"}, map[string]int{"web": 2}
	up, err := b.agents.Update(t.Context(), ag.ID, handoff.AgentChange{MaxChats: &max, Languages: &langs, ChannelMax: &caps})
	if err != nil || up.MaxChats != 7 || len(up.Languages) != 2 || up.ChannelMax["web"] != 2 || up.Name != "Li" {
		t.Fatalf("Update = %+v, %v", up, err)
	}
	zero, bad := 0, []string{"root"}
	for _, ch := range []handoff.AgentChange{{MaxChats: &zero}, {Roles: &bad}, {ChannelMax: &map[string]int{"web": 0}}} {
		if _, err := b.agents.Update(t.Context(), ag.ID, ch); kefu.CodeOf(err) != kefu.Invalid {
			t.Errorf("Update(%+v): %v, want invalid", ch, err)
		}
	}
	if _, err := b.agents.Update(t.Context(), 999999, handoff.AgentChange{MaxChats: &max}); kefu.CodeOf(err) != kefu.NotFound {
		t.Fatalf("Update of an unknown account: %v", err)
	}
	all, err := b.agents.List(t.Context())
	if err != nil || len(all) != 1 || all[0].Email != "li@shop.cn" || all[0].MaxChats != 7 {
		t.Fatalf("List = %+v, %v", all, err)
	}
}

type failingOwner struct{}

func (failingOwner) Assigned(context.Context, pgx.Tx, []handoff.Assignment) error {
	return kefu.Errorf("test", kefu.Unavailable, "down")
}

func (failingOwner) Requeued(context.Context, pgx.Tx, []int64) error {
	return kefu.Errorf("test", kefu.Unavailable, "down")
}
