package handoff_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kefu-dev/kefu"
	"github.com/kefu-dev/kefu/handoff"
)

// clock is a settable clock shared by the queue and the desk.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (b *testBundle) withClock() *clock {
	c := &clock{t: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)}
	b.queue.Now = c.Now
	b.queue.HeartbeatTimeout = 0
	return c
}

func (b *testBundle) route(t *testing.T) []handoff.Assignment {
	t.Helper()
	as, err := b.queue.Route(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return as
}

func (b *testBundle) group(t *testing.T, g handoff.Group) handoff.Group {
	t.Helper()
	g, err := handoff.NewDesk(b.pool).SaveGroup(t.Context(), g)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func (b *testBundle) close(t *testing.T, session int64) {
	t.Helper()
	err := pgx.BeginFunc(t.Context(), b.pool, func(tx pgx.Tx) error {
		ok, err := b.queue.Close(t.Context(), tx, session, "resolved")
		if err == nil && !ok {
			err = fmt.Errorf("session %d had no open request", session)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func agentOf(as []handoff.Assignment, session int64) int64 {
	for _, a := range as {
		if a.SessionID == session {
			return a.AgentID
		}
	}
	return 0
}

func TestRouting(t *testing.T) {
	t.Parallel()

	t.Run("VerifiedVIPGoesToTheVIPGroupAndFirst", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := b.withClock()
		general, vip := b.agent(t, "gen@x.io", 1), b.agent(t, "vip@x.io", 1)
		b.group(t, handoff.Group{Name: "general", Members: []int64{general.ID}})
		b.group(t, handoff.Group{Name: "vip", ProfileMatch: map[string]string{"tier": "VIP"}, Members: []int64{vip.ID}})
		b.enqueue(t, handoff.Request{SessionID: 1, Reason: "r"})
		c.Add(time.Second)
		// Claims VIP but unsigned: an ordinary customer.
		b.enqueue(t, handoff.Request{SessionID: 2, Reason: "r", Profile: handoff.Profile{Tier: "vip"}})
		c.Add(time.Second)
		b.enqueue(t, handoff.Request{SessionID: 3, Reason: "r", Priority: 10, Profile: handoff.Profile{Tier: "vip", Verified: true}})
		as := b.route(t)
		if agentOf(as, 3) != vip.ID || agentOf(as, 1) != general.ID || agentOf(as, 2) != 0 {
			t.Fatalf("assignments %+v: want 3→vip %d, 1→general %d, 2 waiting", as, vip.ID, general.ID)
		}
		if w, _ := b.queue.Wait(t.Context(), 2); w.Position != 1 || w.Online != 1 {
			t.Fatalf("unverified VIP waits at %+v, want position 1 in general with 1 online", w)
		}
	})

	t.Run("Strategies", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			strategy string
			want     []int // index of the agent for each of 6 requests; agents have capacity 3, 1, 3
		}{
			// Least busy by share of capacity: 0 and 2 idle (ties go to the longest idle, then id).
			{handoff.LeastBusy, []int{0, 1, 2, 0, 2, 0}},
			{handoff.RoundRobin, []int{0, 1, 2, 0, 2, 0}},
			// Longest idle: whoever was assigned least recently, whatever their load.
			{handoff.LongestIdle, []int{0, 1, 2, 0, 2, 0}},
		} {
			t.Run(tc.strategy, func(t *testing.T) {
				b := setup(t)
				c := b.withClock()
				ags := []handoff.Agent{b.agent(t, "a@x.io", 3), b.agent(t, "b@x.io", 1), b.agent(t, "c@x.io", 3)}
				b.group(t, handoff.Group{Name: "g", Strategy: tc.strategy, Members: []int64{ags[0].ID, ags[1].ID, ags[2].ID}})
				for i := range tc.want {
					c.Add(time.Second)
					b.enqueue(t, handoff.Request{SessionID: int64(10 + i), Reason: "r"})
					as := b.route(t)
					if len(as) != 1 || as[0].AgentID != ags[tc.want[i]].ID {
						t.Fatalf("request %d went to %+v, want agent %d", i, as, tc.want[i])
					}
				}
			})
		}
	})

	t.Run("RoundRobinTakesTurnsWhateverTheLoad", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.withClock()
		x, y := b.agent(t, "x@x.io", 5), b.agent(t, "y@x.io", 5)
		b.group(t, handoff.Group{Name: "rr", Strategy: handoff.RoundRobin, Members: []int64{x.ID, y.ID}})
		for i := range 4 {
			b.enqueue(t, handoff.Request{SessionID: int64(i + 1), Reason: "r"})
		}
		as := b.route(t)
		got := []int64{agentOf(as, 1), agentOf(as, 2), agentOf(as, 3), agentOf(as, 4)}
		if got[0] != x.ID || got[1] != y.ID || got[2] != x.ID || got[3] != y.ID {
			t.Fatalf("round robin gave %v, want x y x y (%d %d)", got, x.ID, y.ID)
		}
	})

	t.Run("ChannelCapsAndPriorityFIFO", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := b.withClock()
		a := b.agent(t, "a@x.io", 3)
		if _, err := b.pool.Exec(t.Context(), `UPDATE handoff_agent SET channel_max = '{"web": 1}' WHERE id = $1`, a.ID); err != nil {
			t.Fatal(err)
		}
		b.enqueue(t, handoff.Request{SessionID: 1, Reason: "r", Channel: "web"})
		c.Add(time.Second)
		b.enqueue(t, handoff.Request{SessionID: 2, Reason: "r", Channel: "web", Priority: 5})
		c.Add(time.Second)
		b.enqueue(t, handoff.Request{SessionID: 3, Reason: "r", Channel: "email"})
		as := b.route(t)
		if len(as) != 2 || agentOf(as, 2) != a.ID || agentOf(as, 3) != a.ID {
			t.Fatalf("got %+v: want the priority web chat and the e-mail, one web chat at a time", as)
		}
		if w, _ := b.queue.Wait(t.Context(), 1); w.Position != 1 {
			t.Fatalf("web chat 1 should wait first in line: %+v", w)
		}
	})

	t.Run("LapsedOfferGoesToSomeoneElseAndTheAgentIsAway", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := b.withClock()
		x, y := b.agent(t, "x@x.io", 2), b.agent(t, "y@x.io", 2)
		b.group(t, handoff.Group{Name: "g", AcceptSeconds: 20, Members: []int64{x.ID, y.ID}})
		b.enqueue(t, handoff.Request{SessionID: 1, Reason: "r"})
		first := b.route(t)[0]
		other := y.ID
		if first.AgentID == y.ID {
			other = x.ID
		}
		c.Add(19 * time.Second)
		if res, err := b.queue.Sweep(t.Context()); err != nil || res.Lapsed != 0 {
			t.Fatalf("sweep before the accept time: %+v, %v", res, err)
		}
		c.Add(2 * time.Second)
		if res, err := b.queue.Sweep(t.Context()); err != nil || res.Lapsed != 1 {
			t.Fatalf("sweep after the accept time: %+v, %v", res, err)
		}
		as := b.route(t)
		if len(as) != 1 || as[0].AgentID != other {
			t.Fatalf("lapsed offer went to %+v, want the other agent %d", as, other)
		}
		// Accepting keeps it; the first agent is away and holds nothing.
		if err := b.queue.Accept(t.Context(), other, 1); err != nil {
			t.Fatal(err)
		}
		c.Add(time.Minute)
		if res, _ := b.queue.Sweep(t.Context()); res.Lapsed != 0 {
			t.Fatalf("an accepted conversation lapsed: %+v", res)
		}
		live, err := b.queue.Live(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range live.Agents {
			if a.ID == first.AgentID && (a.Status != handoff.Away || a.Active != 0) {
				t.Fatalf("the agent who let it lapse: %+v, want away with no chats", a)
			}
		}
		if err := b.queue.Accept(t.Context(), first.AgentID, 1); kefu.CodeOf(err) != kefu.NotFound {
			t.Fatalf("accepting a lapsed offer: %v, want not_found", err)
		}
	})

	t.Run("LapsedOfferComesBackWhenNobodyElseCanTakeIt", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := b.withClock()
		x := b.agent(t, "solo@x.io", 2)
		b.group(t, handoff.Group{Name: "g", AcceptSeconds: 20, Members: []int64{x.ID}})
		b.enqueue(t, handoff.Request{SessionID: 1, Reason: "r"})
		if as := b.route(t); len(as) != 1 || as[0].AgentID != x.ID {
			t.Fatalf("first offer: %+v", as)
		}
		c.Add(21 * time.Second)
		if res, err := b.queue.Sweep(t.Context()); err != nil || res.Lapsed != 1 {
			t.Fatalf("sweep after the accept time: %+v, %v", res, err)
		}
		if as := b.route(t); len(as) != 0 {
			t.Fatalf("offered to an agent made away: %+v", as)
		}
		// Back at the desk, the only agent gets it again: the customer does not wait for nobody.
		if err := b.agents.SetStatus(t.Context(), x.ID, handoff.Online); err != nil {
			t.Fatal(err)
		}
		if as := b.route(t); len(as) != 1 || as[0].AgentID != x.ID {
			t.Fatalf("after the agent came back: %+v, want the offer again", as)
		}
	})

	t.Run("SLABreachOverflows", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := b.withClock()
		l2 := b.agent(t, "l2@x.io", 1)
		b.group(t, handoff.Group{Name: "L2", Tier: 2, Members: []int64{l2.ID}})
		b.group(t, handoff.Group{Name: "L1", Tier: 1, SLASeconds: 30, Overflow: "L2", Members: []int64{}})
		b.enqueue(t, handoff.Request{SessionID: 1, Reason: "r"})
		if as := b.route(t); len(as) != 0 {
			t.Fatalf("L1 has nobody, yet %+v", as)
		}
		c.Add(31 * time.Second)
		if res, err := b.queue.Sweep(t.Context()); err != nil || res.Overflowed != 1 {
			t.Fatalf("sweep: %+v, %v", res, err)
		}
		if as := b.route(t); len(as) != 1 || as[0].AgentID != l2.ID || as[0].Group != "L2" {
			t.Fatalf("after overflow: %+v", as)
		}
	})

	t.Run("Transfer", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.withClock()
		x, y, z := b.agent(t, "x@x.io", 1), b.agent(t, "y@x.io", 1), b.agent(t, "z@x.io", 1)
		b.group(t, handoff.Group{Name: "L1", Members: []int64{x.ID}})
		b.group(t, handoff.Group{Name: "L2", Tier: 2, Members: []int64{z.ID}})
		b.group(t, handoff.Group{Name: "empty", Tier: 3, Members: []int64{}})
		b.enqueue(t, handoff.Request{SessionID: 1, Reason: "r"})
		if as := b.route(t); len(as) != 1 || as[0].AgentID != x.ID {
			t.Fatalf("first assignment %+v", as)
		}
		for _, tc := range []struct {
			by   int64
			tr   handoff.Transfer
			code kefu.Code
		}{
			{y.ID, handoff.Transfer{SessionID: 1, ToAgent: z.ID}, kefu.NotFound},    // not y's
			{x.ID, handoff.Transfer{SessionID: 1, ToGroup: "nope"}, kefu.NotFound},  // unknown group
			{x.ID, handoff.Transfer{SessionID: 1, ToGroup: "empty"}, kefu.Conflict}, // nobody online
			{x.ID, handoff.Transfer{SessionID: 1, ToAgent: 99999}, kefu.NotFound},   // unknown agent
			{x.ID, handoff.Transfer{SessionID: 1}, kefu.Invalid},                    // nowhere
			{x.ID, handoff.Transfer{SessionID: 2, ToAgent: y.ID}, kefu.NotFound},    // no such conversation
			{x.ID, handoff.Transfer{SessionID: 1, ToAgent: x.ID}, kefu.Invalid},     // to oneself
		} {
			if _, err := b.queue.Transfer(t.Context(), tc.by, false, tc.tr); kefu.CodeOf(err) != tc.code {
				t.Errorf("transfer %+v by %d: %v, want %s", tc.tr, tc.by, err, tc.code)
			}
		}
		if err := b.agents.SetStatus(t.Context(), y.ID, handoff.Away); err != nil {
			t.Fatal(err)
		}
		if _, err := b.queue.Transfer(t.Context(), x.ID, false, handoff.Transfer{SessionID: 1, ToAgent: y.ID}); kefu.CodeOf(err) != kefu.Conflict {
			t.Fatalf("transfer to an away agent: %v, want conflict", err)
		}
		a, err := b.queue.Transfer(t.Context(), x.ID, false, handoff.Transfer{SessionID: 1, ToGroup: "L2", Note: "needs a refund override"})
		if err != nil || a.AgentID != 0 || a.Group != "L2" {
			t.Fatalf("transfer to L2: %+v, %v", a, err)
		}
		as := b.route(t)
		if len(as) != 1 || as[0].AgentID != z.ID || as[0].Note != "needs a refund override" || as[0].Transfers != 1 {
			t.Fatalf("after transfer: %+v", as)
		}
		// x's slot is free again: a new request reaches x.
		b.enqueue(t, handoff.Request{SessionID: 3, Reason: "r"})
		if as := b.route(t); len(as) != 1 || as[0].AgentID != x.ID {
			t.Fatalf("x's slot not freed: %+v", as)
		}
		// A supervisor may move any conversation; z is then free.
		if _, err := b.queue.Transfer(t.Context(), 0, true, handoff.Transfer{SessionID: 1, ToAgent: y.ID}); kefu.CodeOf(err) != kefu.Conflict {
			t.Fatalf("supervisor transfer to an away agent: %v", err)
		}
	})

	t.Run("CloseAbandonAndCSAT", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := b.withClock()
		desk := handoff.NewDesk(b.pool)
		desk.Now = c.Now
		x := b.agent(t, "x@x.io", 1)
		b.enqueue(t, handoff.Request{SessionID: 1, Reason: "r"})
		b.enqueue(t, handoff.Request{SessionID: 2, Reason: "r"})
		b.route(t)
		c.Add(10 * time.Second)
		err := pgx.BeginFunc(t.Context(), b.pool, func(tx pgx.Tx) error {
			if _, err := b.queue.Abandon(t.Context(), tx, 1); err != nil { // assigned: not abandonable
				return err
			}
			ok, err := b.queue.Abandon(t.Context(), tx, 2)
			if !ok {
				return fmt.Errorf("abandon of a waiting request reported false")
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := desk.RateService(t.Context(), 1, 5, ""); kefu.CodeOf(err) != kefu.NotFound {
			t.Fatalf("rating an open conversation: %v, want not_found", err)
		}
		err = pgx.BeginFunc(t.Context(), b.pool, func(tx pgx.Tx) error {
			return b.queue.Responded(t.Context(), tx, x.ID, 1)
		})
		if err != nil {
			t.Fatal(err)
		}
		c.Add(50 * time.Second)
		err = pgx.BeginFunc(t.Context(), b.pool, func(tx pgx.Tx) error {
			_, err := b.queue.Close(t.Context(), tx, 1, "bogus")
			return err
		})
		if kefu.CodeOf(err) != kefu.Invalid {
			t.Fatalf("unknown disposition: %v", err)
		}
		b.close(t, 1)
		for _, tc := range []struct {
			score int
			code  kefu.Code
		}{{0, kefu.Invalid}, {6, kefu.Invalid}, {4, ""}, {5, kefu.Conflict}} {
			if err := desk.RateService(t.Context(), 1, tc.score, "快"); kefu.CodeOf(err) != tc.code {
				t.Errorf("rating %d: %v, want %q", tc.score, err, tc.code)
			}
		}
		rep, err := b.queue.Report(t.Context(), c.Now().Add(-time.Hour), c.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		tot := rep.Total
		if tot.Escalated != 2 || tot.Assigned != 1 || tot.Closed != 1 || tot.Abandoned != 1 || tot.AbandonRate != 0.5 ||
			tot.AvgFRT != 10 || tot.AvgHandle != 50 || tot.AvgWait != 0 || tot.CSATCount != 1 || tot.CSAT != 4 || tot.CSATShare != 1 {
			t.Fatalf("report %+v", tot)
		}
		if len(rep.ByAgent) != 2 || len(rep.ByDay) != 1 || rep.ByDay[0].Key != "2026-11-27" {
			t.Fatalf("by agent %+v, by day %+v", rep.ByAgent, rep.ByDay)
		}
	})

	// Requests nobody online can take (their group is all away) must not fill the batch and
	// starve the requests behind them.
	t.Run("ABacklogNobodyCanTakeDoesNotBlockTheRest", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := b.withClock()
		b.queue.BatchSize = 2
		away, here := b.agent(t, "away@x.io", 1), b.agent(t, "here@x.io", 1)
		if err := b.agents.SetStatus(t.Context(), away.ID, handoff.Away); err != nil {
			t.Fatal(err)
		}
		b.group(t, handoff.Group{Name: "L1", Members: []int64{here.ID}})
		b.group(t, handoff.Group{Name: "L3", Tier: 3, Members: []int64{away.ID}})
		for i := range 3 {
			b.enqueue(t, handoff.Request{SessionID: int64(i + 1), Reason: "r", Group: "L3", Priority: 5})
			c.Add(time.Second)
		}
		b.enqueue(t, handoff.Request{SessionID: 9, Reason: "r", Language: "zh"})
		if as := b.route(t); len(as) != 1 || as[0].SessionID != 9 || as[0].AgentID != here.ID {
			t.Fatalf("behind a backlog for an empty group: %+v", as)
		}
	})

	t.Run("HeartbeatsKeepAnAgentOnline", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		x := b.agent(t, "x@x.io", 1)
		b.queue.HeartbeatTimeout = time.Minute
		b.queue.Now = func() time.Time { return time.Now().Add(2 * time.Minute) }
		if res, err := b.queue.Sweep(t.Context()); err != nil || res.Away != 1 {
			t.Fatalf("silent console: %+v, %v", res, err)
		}
		if err := b.agents.Heartbeat(t.Context(), x.ID); err != nil {
			t.Fatal(err)
		}
		b.enqueue(t, handoff.Request{SessionID: 1, Reason: "r"})
		if as := b.route(t); len(as) != 1 {
			t.Fatalf("an agent back from auto-away gets nothing: %+v", as)
		}
	})

	// A router that dies inside its transaction (here: its connection is killed while the
	// owner hook runs) assigns nothing: the request waits, no slot is taken, and the next
	// pass assigns it.
	t.Run("CrashMidAssignmentLosesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		x := b.agent(t, "x@x.io", 1)
		b.enqueue(t, handoff.Request{SessionID: 1, Reason: "r"})
		b.queue.SetOwner(killOwner{pool: b}, nil)
		if as, err := b.queue.Route(t.Context()); err == nil || len(as) != 0 {
			t.Fatalf("route with its connection killed: %+v, %v", as, err)
		}
		b.queue.SetOwner(nil, nil)
		var active int
		if err := b.pool.QueryRow(t.Context(), "SELECT active_chats FROM handoff_agent WHERE id = $1", x.ID).Scan(&active); err != nil || active != 0 {
			t.Fatalf("active chats after the crash: %d, %v", active, err)
		}
		if as := b.route(t); len(as) != 1 || as[0].AgentID != x.ID {
			t.Fatalf("after the crash: %+v", as)
		}
	})
}

type killOwner struct{ pool *testBundle }

func (k killOwner) Assigned(ctx context.Context, tx pgx.Tx, _ []handoff.Assignment) error {
	_, err := tx.Exec(ctx, "SELECT pg_terminate_backend(pg_backend_pid())")
	return err
}

func (killOwner) Requeued(context.Context, pgx.Tx, []int64) error { return nil }

// TestConcurrentDesk races routers, customers arriving and abandoning, agents closing,
// transferring and letting offers lapse, and sweeps, and checks after every step of a monitor
// that no conversation is held by two agents and no agent is over capacity, and at the end
// that every conversation was accounted for. Run with -race.
func TestConcurrentDesk(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.queue.HeartbeatTimeout = 0
	const agents, capacity, conversations = 12, 3, 1500
	var ids []int64
	for i := range agents {
		ids = append(ids, b.agent(t, fmt.Sprintf("ag%d@x.io", i), capacity).ID)
	}
	b.group(t, handoff.Group{Name: "A", Members: ids[:6], AcceptSeconds: 1})
	b.group(t, handoff.Group{Name: "B", Tier: 2, Members: ids[6:], Strategy: handoff.RoundRobin, AcceptSeconds: 1})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	var workers sync.WaitGroup
	fail := func(err error) {
		if err != nil && ctx.Err() == nil && kefu.CodeOf(err) != kefu.Conflict && kefu.CodeOf(err) != kefu.NotFound {
			t.Error(err)
		}
	}
	// Customers.
	for range 3 {
		workers.Go(func() {
			for ctx.Err() == nil {
				s := next.Add(1)
				if s > conversations {
					return
				}
				r := handoff.Request{SessionID: s, Reason: "r", Priority: int(s % 3)}
				if s%4 == 0 {
					r.Group = "B"
				}
				fail(pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error { _, err := b.queue.Enqueue(ctx, tx, r); return err }))
				if s%10 == 0 { // some give up
					fail(pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error { _, err := b.queue.Abandon(ctx, tx, s); return err }))
				}
			}
		})
	}
	// Routers and a sweeper.
	stop := make(chan struct{})
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := b.queue.Route(ctx)
				fail(err)
			}
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			_, err := b.queue.Sweep(ctx)
			fail(err)
			// Agents made away by a lapse come back.
			_, err = b.pool.Exec(ctx, "UPDATE handoff_agent SET status = 'online' WHERE status = 'away'")
			fail(err)
		}
	})
	// Agents: close, transfer, or leave it to lapse.
	rng := rand.New(rand.NewPCG(1, 2))
	var rngMu sync.Mutex
	for _, id := range ids {
		workers.Go(func() {
			for ctx.Err() == nil {
				open, err := b.queue.Open(ctx, id)
				fail(err)
				if len(open) == 0 {
					if next.Load() > conversations {
						var left int
						_ = b.pool.QueryRow(ctx, "SELECT count(*) FROM handoff_request WHERE state IN ('queued', 'assigned')").Scan(&left)
						if left == 0 {
							return
						}
					}
					time.Sleep(2 * time.Millisecond)
					continue
				}
				a := open[0]
				rngMu.Lock()
				dice := rng.IntN(20)
				rngMu.Unlock()
				switch {
				case dice == 0: // lapse: do nothing for a while
					time.Sleep(20 * time.Millisecond)
				case dice == 1:
					_, err := b.queue.Transfer(ctx, id, false, handoff.Transfer{SessionID: a.SessionID, ToGroup: "B"})
					fail(err)
				case dice == 2:
					_, err := b.queue.Transfer(ctx, id, false, handoff.Transfer{SessionID: a.SessionID, ToAgent: ids[(int(id)+1)%len(ids)]})
					fail(err)
				default:
					fail(pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
						if err := b.queue.Hold(ctx, tx, a.SessionID); err != nil {
							return err
						}
						if err := b.queue.Responded(ctx, tx, id, a.SessionID); err != nil {
							return err
						}
						var mine bool
						if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM handoff_request WHERE session_id = $1 AND agent_id = $2 AND state = 'assigned')",
							a.SessionID, id).Scan(&mine); err != nil || !mine {
							return err
						}
						_, err := b.queue.Close(ctx, tx, a.SessionID, "resolved")
						return err
					}))
				}
			}
		})
	}
	// The monitor: one statement, one snapshot.
	checks := 0
	monitor := func() {
		var over, mismatched, twice int
		err := b.pool.QueryRow(context.Background(), `
WITH held AS (SELECT agent_id, count(*) AS n FROM handoff_request WHERE state = 'assigned' GROUP BY agent_id)
SELECT (SELECT count(*) FROM handoff_agent a JOIN held h ON h.agent_id = a.id WHERE h.n > a.max_chats),
       (SELECT count(*) FROM handoff_agent a LEFT JOIN held h ON h.agent_id = a.id WHERE a.active_chats <> coalesce(h.n, 0)),
       (SELECT count(*) FROM (SELECT session_id FROM handoff_request WHERE state IN ('queued', 'assigned')
                              GROUP BY session_id HAVING count(*) > 1) d)`).Scan(&over, &mismatched, &twice)
		if err != nil {
			t.Error(err)
			return
		}
		checks++
		if over > 0 || twice > 0 {
			t.Errorf("monitor: %d agents over capacity, %d sessions open twice", over, twice)
		}
		// active_chats may differ from the rows only inside a transaction that changes both;
		// a snapshot sees both or neither.
		if mismatched > 0 {
			t.Errorf("monitor: %d agents whose active_chats disagree with their conversations", mismatched)
		}
	}
	done := make(chan struct{})
	go func() { workers.Wait(); close(done) }()
	for loop := true; loop; {
		select {
		case <-done:
			loop = false
		case <-time.After(20 * time.Millisecond):
			monitor()
		}
	}
	close(stop)
	wg.Wait()
	monitor()
	if ctx.Err() != nil {
		t.Fatalf("the desk did not drain in time")
	}
	var closed, abandoned, open int
	if err := b.pool.QueryRow(t.Context(), `
SELECT count(*) FILTER (WHERE state = 'closed'), count(*) FILTER (WHERE state = 'abandoned'),
       count(*) FILTER (WHERE state IN ('queued', 'assigned')) FROM handoff_request`).Scan(&closed, &abandoned, &open); err != nil {
		t.Fatal(err)
	}
	if closed+abandoned != conversations || open != 0 {
		t.Fatalf("%d closed + %d abandoned of %d, %d open", closed, abandoned, conversations, open)
	}
	t.Logf("%d conversations: %d closed, %d abandoned; %d monitor checks", conversations, closed, abandoned, checks)
}
