package handoff

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kefu-dev/kefu"
)

// Routing strategies of a group.
const (
	LeastBusy   = "least_busy"   // fewest open chats, then longest since the last assignment
	RoundRobin  = "round_robin"  // in turn, by agent id
	LongestIdle = "longest_idle" // longest since the last assignment, whatever the load
)

// candidate is an online agent with room, locked by the routing transaction.
type candidate struct {
	id           int64
	max, active  int
	languages    []string
	channelMax   map[string]int
	channelOpen  map[string]int
	lastAssigned time.Time
	groups       map[int64]bool
}

// fits reports whether c may take r. An agent who declined r (let its offer lapse, or
// transferred it) is passed over; pick falls back on them only for a lapse nobody else can take.
func (c *candidate) fits(r *queued) bool { return c.could(r) && !slices.Contains(r.declined, c.id) }

// could reports whether c could take r by capacity, group, language and channel.
func (c *candidate) could(r *queued) bool {
	if c.active >= c.max {
		return false
	}
	if r.groupID != 0 && !c.groups[r.groupID] {
		return false
	}
	if r.language != "" && len(c.languages) > 0 && !slices.Contains(c.languages, r.language) {
		return false
	}
	if m, ok := c.channelMax[r.channel]; ok && c.channelOpen[r.channel] >= m {
		return false
	}
	return true
}

type queued struct {
	Assignment
	groupID  int64
	language string
	channel  string
	declined []int64
}

type groupRoute struct {
	strategy string
	rrLast   int64
	accept   time.Duration
	moved    bool
}

// Route is one routing pass: in one transaction it takes up to BatchSize waiting requests
// (priority, then FIFO; requests and agents another router holds are skipped, never waited
// for), matches them to online agents with room by each group's strategy, records the
// assignments, tells the owner, and commits; then the console is told. Under the agents' row
// locks capacity holds however many routers run, and a request's row lock and state keep it
// from going to two agents.
func (q *Queue) Route(ctx context.Context) ([]Assignment, error) {
	const op = "handoff.Route"
	owner, notify := q.hooks()
	tx, err := q.pool.Begin(ctx)
	if err != nil {
		return nil, kefu.E(op, kefu.Unavailable, err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after Commit
	now := q.Now()

	cands, err := lockCandidates(ctx, tx)
	if err != nil || len(cands) == 0 {
		return nil, err
	}
	reqs, err := lockQueued(ctx, tx, q.BatchSize, cands)
	if err != nil || len(reqs) == 0 {
		return nil, err
	}
	groups, err := loadGroups(ctx, tx)
	if err != nil {
		return nil, err
	}
	var out []Assignment
	byAgent := map[int64]int{}
	for i := range reqs {
		r := &reqs[i]
		g := groups[r.groupID]
		c := pick(cands, r, g)
		if c == nil {
			continue
		}
		c.active++
		c.channelOpen[r.channel]++
		c.lastAssigned = now
		byAgent[c.id]++
		if g != nil {
			g.rrLast, g.moved = c.id, true
			r.AcceptBy = now.Add(g.accept)
		} else {
			r.AcceptBy = now.Add(30 * time.Second)
		}
		r.AgentID, r.Assigned = c.id, now
		out = append(out, r.Assignment)
	}
	if len(out) == 0 {
		return nil, nil
	}
	ids, agents := make([]int64, len(out)), make([]int64, len(out))
	for i, a := range out {
		ids[i], agents[i] = a.RequestID, a.AgentID
	}
	if _, err := tx.Exec(ctx, `
UPDATE handoff_request r SET state = 'assigned', agent_id = v.agent, assigned_at = $3,
       first_assigned_at = coalesce(r.first_assigned_at, $3)
FROM unnest($1::bigint[], $2::bigint[]) AS v(id, agent) WHERE r.id = v.id`, ids, agents, now); err != nil {
		return nil, kefu.E(op, kefu.Unavailable, err)
	}
	agentIDs, counts := make([]int64, 0, len(byAgent)), make([]int32, 0, len(byAgent))
	for id, n := range byAgent {
		agentIDs, counts = append(agentIDs, id), append(counts, int32(n))
	}
	if _, err := tx.Exec(ctx, `
UPDATE handoff_agent a SET active_chats = a.active_chats + v.n, last_assigned_at = $3
FROM unnest($1::bigint[], $2::int[]) AS v(id, n) WHERE a.id = v.id`, agentIDs, counts, now); err != nil {
		return nil, kefu.E(op, kefu.Unavailable, err)
	}
	for id, g := range groups {
		if g.moved && g.strategy == RoundRobin {
			if _, err := tx.Exec(ctx, "UPDATE handoff_group SET rr_last_agent = $2 WHERE id = $1", id, g.rrLast); err != nil {
				return nil, kefu.E(op, kefu.Unavailable, err)
			}
		}
	}
	if owner != nil {
		if err := owner.Assigned(ctx, tx, out); err != nil {
			return nil, kefu.E(op, "", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, kefu.E(op, kefu.Unavailable, err)
	}
	for _, a := range out {
		q.log.DebugContext(ctx, "conversation assigned", "session_id", a.SessionID, "agent_id", a.AgentID, "reason", a.Reason)
	}
	if notify != nil {
		notify(ctx, out)
	}
	return out, nil
}

// pick chooses among the candidates that fit the request, by the group's strategy.
func pick(cands []*candidate, r *queued, g *groupRoute) *candidate {
	strategy := LeastBusy
	if g != nil {
		strategy = g.strategy
	}
	choose := func(ok func(*candidate) bool) *candidate {
		var best *candidate
		for _, c := range cands {
			if ok(c) && (best == nil || better(strategy, c, best, g)) {
				best = c
			}
		}
		return best
	}
	if best := choose(func(c *candidate) bool { return c.fits(r) }); best != nil || r.Transfers > 0 {
		return best
	}
	// An offer that lapsed goes to someone else; when nobody else can take it, the agent who
	// let it lapse gets it again once they are back online (a desk of one, or offers that
	// lapsed while the server was down), rather than the customer waiting for nobody. A
	// conversation transferred away never comes back to the agent who transferred it.
	return choose(func(c *candidate) bool { return c.could(r) })
}

func better(strategy string, c, best *candidate, g *groupRoute) bool {
	switch strategy {
	case RoundRobin:
		// The next id after the cursor, wrapping round.
		ca, ba := c.id > g.rrLast, best.id > g.rrLast
		if ca != ba {
			return ca
		}
		return c.id < best.id
	case LongestIdle:
		if d := c.lastAssigned.Compare(best.lastAssigned); d != 0 {
			return d < 0
		}
		return c.id < best.id
	default:
		// Least busy as a share of capacity, so a 10-chat senior and a 2-chat trainee fill
		// evenly; then the longest idle.
		if d := cmp.Compare(c.active*best.max, best.active*c.max); d != 0 {
			return d < 0
		}
		if d := c.lastAssigned.Compare(best.lastAssigned); d != 0 {
			return d < 0
		}
		return c.id < best.id
	}
}

func lockCandidates(ctx context.Context, tx pgx.Tx) ([]*candidate, error) {
	const op = "handoff.Route"
	// The locking read returns each row's newest version, so the counts are current.
	rows, err := tx.Query(ctx, `
SELECT id, max_chats, active_chats, languages, channel_max, coalesce(last_assigned_at, 'epoch')
FROM handoff_agent
WHERE status = 'online' AND 'agent' = ANY (roles) AND active_chats < max_chats
FOR UPDATE SKIP LOCKED`)
	if err != nil {
		return nil, kefu.E(op, kefu.Unavailable, err)
	}
	var out []*candidate
	for rows.Next() {
		c := &candidate{channelOpen: map[string]int{}, groups: map[int64]bool{}}
		var chanMax []byte
		if err := rows.Scan(&c.id, &c.max, &c.active, &c.languages, &chanMax, &c.lastAssigned); err != nil {
			rows.Close()
			return nil, kefu.E(op, kefu.Unavailable, err)
		}
		if err := json.Unmarshal(chanMax, &c.channelMax); err != nil {
			rows.Close()
			return nil, kefu.E(op, kefu.Internal, err)
		}
		out = append(out, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, kefu.E(op, kefu.Unavailable, err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	ids := make([]int64, len(out))
	byID := map[int64]*candidate{}
	for i, c := range out {
		ids[i], byID[c.id] = c.id, c
	}
	rows, err = tx.Query(ctx, "SELECT agent_id, group_id FROM handoff_member WHERE agent_id = ANY ($1)", ids)
	if err != nil {
		return nil, kefu.E(op, kefu.Unavailable, err)
	}
	for rows.Next() {
		var a, g int64
		if err := rows.Scan(&a, &g); err != nil {
			rows.Close()
			return nil, kefu.E(op, kefu.Unavailable, err)
		}
		byID[a].groups[g] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, kefu.E(op, kefu.Unavailable, err)
	}
	// Per-channel caps need the open chats per channel; only for agents that have caps.
	var capped []int64
	for _, c := range out {
		if len(c.channelMax) > 0 {
			capped = append(capped, c.id)
		}
	}
	if len(capped) > 0 {
		rows, err := tx.Query(ctx, `
SELECT agent_id, channel, count(*) FROM handoff_request
WHERE state = 'assigned' AND agent_id = ANY ($1) GROUP BY agent_id, channel`, capped)
		if err != nil {
			return nil, kefu.E(op, kefu.Unavailable, err)
		}
		for rows.Next() {
			var id int64
			var ch string
			var n int
			if err := rows.Scan(&id, &ch, &n); err != nil {
				rows.Close()
				return nil, kefu.E(op, kefu.Unavailable, err)
			}
			byID[id].channelOpen[ch] = n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, kefu.E(op, kefu.Unavailable, err)
		}
	}
	return out, nil
}

// lockQueued locks up to limit waiting requests, first by priority and then by time, among
// those that one of the candidates could take by group and language: requests nobody locked
// could take (a group whose members are all away, a language nobody online speaks) must not
// fill the batch and starve everyone behind them.
func lockQueued(ctx context.Context, tx pgx.Tx, limit int, cands []*candidate) ([]queued, error) {
	const op = "handoff.Route"
	if limit <= 0 {
		limit = 500
	}
	groups, langs, anyLang := []int64{}, []string{}, false
	for _, c := range cands {
		for g := range c.groups {
			if !slices.Contains(groups, g) {
				groups = append(groups, g)
			}
		}
		anyLang = anyLang || len(c.languages) == 0
		for _, l := range c.languages {
			if !slices.Contains(langs, l) {
				langs = append(langs, l)
			}
		}
	}
	rows, err := tx.Query(ctx, `
SELECT r.id, r.session_id, coalesce(r.group_id, 0), coalesce(g.name, ''), r.reason, r.language, r.channel,
       r.priority, r.profile, r.handoff_note, r.transfers, r.enqueued_at, r.declined
FROM handoff_request r LEFT JOIN handoff_group g ON g.id = r.group_id
WHERE r.state = 'queued'
  AND (r.group_id IS NULL OR r.group_id = ANY ($2))
  AND (r.language = '' OR $3 OR r.language = ANY ($4))
ORDER BY r.priority DESC, r.queued_at, r.id
LIMIT $1
FOR UPDATE OF r SKIP LOCKED`, limit, groups, anyLang, langs)
	if err != nil {
		return nil, kefu.E(op, kefu.Unavailable, err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (queued, error) {
		var r queued
		var profile []byte
		err := row.Scan(&r.RequestID, &r.SessionID, &r.groupID, &r.Group, &r.Reason, &r.language, &r.channel,
			&r.Priority, &profile, &r.Note, &r.Transfers, &r.Enqueued, &r.declined)
		r.GroupID, r.Language, r.Channel = r.groupID, r.language, r.channel
		if err == nil {
			err = json.Unmarshal(profile, &r.Profile)
		}
		return r, err
	})
}

func loadGroups(ctx context.Context, tx pgx.Tx) (map[int64]*groupRoute, error) {
	rows, err := tx.Query(ctx, "SELECT id, strategy, rr_last_agent, accept_seconds FROM handoff_group")
	if err != nil {
		return nil, kefu.E("handoff.Route", kefu.Unavailable, err)
	}
	defer rows.Close()
	out := map[int64]*groupRoute{}
	for rows.Next() {
		var id int64
		var secs int
		g := &groupRoute{}
		if err := rows.Scan(&id, &g.strategy, &g.rrLast, &secs); err != nil {
			return nil, kefu.E("handoff.Route", kefu.Unavailable, err)
		}
		g.accept = time.Duration(secs) * time.Second
		out[id] = g
	}
	return out, rows.Err()
}
