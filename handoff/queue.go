package handoff

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kefu-dev/kefu"
)

// Request asks for a person to take over a conversation.
type Request struct {
	SessionID int64
	Language  string
	Channel   string  // "web", "webhook", …: agents may have a capacity per channel
	Reason    string  // "customer_asked", "low_confidence", …: shown to the agent
	Priority  int     // higher first; FIFO within a priority
	Group     string  // the skill group asked for by name; "" routes by language and profile
	Profile   Profile // who the customer is, as far as the site vouched for it
}

// Profile is what the embedding site tells about a customer. Routing uses only verified
// profiles (signed by the site), so a customer cannot make themselves a VIP.
type Profile struct {
	Name     string `json:"name,omitempty"`
	Email    string `json:"email,omitempty"`
	Tier     string `json:"tier,omitempty"`    // "vip", "standard", …
	Region   string `json:"region,omitempty"`  // "cn", "eu", …
	Product  string `json:"product,omitempty"` // the product the customer uses
	Verified bool   `json:"verified"`
}

// VIP reports whether a verified profile is in the VIP tier.
func (p Profile) VIP() bool { return p.Verified && strings.EqualFold(p.Tier, "vip") }

// Assignment is a conversation given to an agent.
type Assignment struct {
	RequestID int64     `json:"request_id"`
	SessionID int64     `json:"session_id"`
	AgentID   int64     `json:"agent_id"`
	GroupID   int64     `json:"group_id,omitempty"`
	Group     string    `json:"group,omitempty"`
	Reason    string    `json:"reason"`
	Language  string    `json:"language"`
	Channel   string    `json:"channel"`
	Priority  int       `json:"priority"`
	Profile   Profile   `json:"profile"`
	Note      string    `json:"note,omitempty"` // left by whoever transferred it
	Transfers int       `json:"transfers"`
	Enqueued  time.Time `json:"enqueued_at"`
	Assigned  time.Time `json:"assigned_at"`
	Accepted  bool      `json:"accepted"`
	// AcceptBy is when an offer that is not accepted (or answered) lapses and goes to
	// someone else.
	AcceptBy time.Time `json:"accept_by"`
}

// Owner is whoever owns a conversation besides the queue (dialog): it hears, inside the
// queue's transactions, when conversations pass to agents and when they go back to waiting,
// so that its state changes atomically with the queue's.
type Owner interface {
	Assigned(ctx context.Context, tx pgx.Tx, as []Assignment) error
	Requeued(ctx context.Context, tx pgx.Tx, sessionIDs []int64) error
}

// Queue is the routing queue in PostgreSQL.
type Queue struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	wake chan struct{}
	// Now is the queue's clock; a simulation replaces it.
	Now func() time.Time
	// BatchSize is how many waiting requests one routing pass considers.
	BatchSize int
	// HeartbeatTimeout makes an online agent whose console stopped beating away.
	HeartbeatTimeout time.Duration

	mu     sync.Mutex
	owner  Owner
	notify func(context.Context, []Assignment)
	lapsed func(context.Context, []Lapse)
}

// Lapse is an offer that went back to the queue because its agent neither accepted nor
// answered it in time.
type Lapse struct {
	SessionID int64 `json:"session_id"`
	AgentID   int64 `json:"agent_id"`
}

// SetLapsed sets who is told, after a sweep commits, of offers that lapsed (the agent's
// console and the customer's widget).
func (q *Queue) SetLapsed(fn func(context.Context, []Lapse)) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.lapsed = fn
}

// NotifyChannel is the prefix of the PostgreSQL channel that wakes every instance's router;
// the channel is suffixed with the database and schema, so that deployments (and tests)
// sharing a server do not wake each other.
const NotifyChannel = "kefu_handoff"

const channelSQL = `'` + NotifyChannel + `_' || substr(md5(current_database() || '.' || current_schema()), 1, 12)`

// notifySQL wakes the routers when the transaction it runs in commits.
const notifySQL = `SELECT pg_notify(` + channelSQL + `, '')`

// NewQueue returns the queue.
func NewQueue(pool *pgxpool.Pool, log *slog.Logger) *Queue {
	return &Queue{pool: pool, log: log.With("component", "handoff"), wake: make(chan struct{}, 1),
		Now: time.Now, BatchSize: 500, HeartbeatTimeout: 90 * time.Second}
}

// SetOwner sets who hears of assignments inside the routing transaction, and who is told
// after each commit (the agent's console).
func (q *Queue) SetOwner(o Owner, notify func(context.Context, []Assignment)) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.owner, q.notify = o, notify
}

func (q *Queue) hooks() (Owner, func(context.Context, []Assignment)) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.owner, q.notify
}

// Enqueue adds a request inside the caller's transaction and wakes the routers of every
// instance when it commits. A session that already has an open request keeps it; Enqueue then
// reports false. The skill group is the one asked for by name, else the lowest-tier group
// that speaks the language and whose profile rules the customer's verified profile meets
// (a group with such rules wins over one without); no groups at all means any agent.
func (q *Queue) Enqueue(ctx context.Context, tx pgx.Tx, r Request) (bool, error) {
	const op = "handoff.Enqueue"
	gid, err := q.groupFor(ctx, tx, r)
	if err != nil {
		return false, err
	}
	if r.Channel == "" {
		r.Channel = "web"
	}
	profile, err := json.Marshal(r.Profile)
	if err != nil {
		return false, kefu.E(op, kefu.Internal, err)
	}
	const sql = `
INSERT INTO handoff_request (session_id, language, channel, reason, priority, group_id, profile,
                             enqueued_at, queued_at, group_since)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $8)
ON CONFLICT (session_id) WHERE state IN ('queued', 'assigned') DO NOTHING`
	tag, err := tx.Exec(ctx, sql, r.SessionID, r.Language, r.Channel, r.Reason, r.Priority, gid, profile, q.Now())
	if err != nil {
		return false, kefu.E(op, kefu.Unavailable, err)
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	if _, err := tx.Exec(ctx, notifySQL); err != nil {
		return false, kefu.E(op, kefu.Unavailable, err)
	}
	return true, nil
}

func (q *Queue) groupFor(ctx context.Context, tx pgx.Tx, r Request) (*int64, error) {
	const op = "handoff.Enqueue"
	if r.Group != "" {
		var id int64
		err := tx.QueryRow(ctx, "SELECT id FROM handoff_group WHERE name = $1", r.Group).Scan(&id)
		if err == nil {
			return &id, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, kefu.E(op, kefu.Unavailable, err)
		}
		q.log.WarnContext(ctx, "escalation names an unknown skill group; routing by language", "group", r.Group)
	}
	var p map[string]string
	if r.Profile.Verified {
		p = map[string]string{"tier": strings.ToLower(r.Profile.Tier), "region": strings.ToLower(r.Profile.Region),
			"product": strings.ToLower(r.Profile.Product)}
	} else {
		p = map[string]string{}
	}
	pj, _ := json.Marshal(p)
	var id int64
	err := tx.QueryRow(ctx, `
SELECT id FROM handoff_group
WHERE (cardinality(languages) = 0 OR $1 = '' OR $1 = ANY (languages))
  AND $2::jsonb @> profile_match
ORDER BY tier, profile_match = '{}', id
LIMIT 1`, r.Language, pj).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, kefu.E(op, kefu.Unavailable, err)
	}
	return &id, nil
}

// Wake tells the router that there may be work; it never blocks.
func (q *Queue) Wake() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Wait is where a waiting customer stands: their place among requests for the same group,
// ahead of them by priority and then time, and an estimate of the wait.
type Wait struct {
	Position  int           `json:"position"`   // 1-based; 0 when not waiting
	Estimated time.Duration `json:"estimated"`  // nanoseconds in JSON
	Online    int           `json:"online"`     // agents online who could take it
	GroupID   int64         `json:"group_id"`   //
	QueuedFor time.Duration `json:"queued_for"` //
}

// Position is the 1-based place of the session's queued request (0 when not queued).
func (q *Queue) Position(ctx context.Context, sessionID int64) (int, error) {
	w, err := q.Wait(ctx, sessionID)
	return w.Position, err
}

// Wait estimates the session's wait: its position times the group's recent handling time,
// shared by the agents online in the group (each taking up to their capacity).
func (q *Queue) Wait(ctx context.Context, sessionID int64) (Wait, error) {
	const op = "handoff.Wait"
	const sql = `
WITH me AS (
    SELECT id, priority, queued_at, group_id FROM handoff_request WHERE session_id = $1 AND state = 'queued'
), ahead AS (
    SELECT count(*) AS n FROM handoff_request r, me
    WHERE r.state = 'queued' AND r.group_id IS NOT DISTINCT FROM me.group_id
      AND (r.priority > me.priority OR (r.priority = me.priority AND (r.queued_at, r.id) <= (me.queued_at, me.id)))
), agents AS (
    SELECT count(*) AS n, coalesce(sum(a.max_chats), 0) AS slots FROM handoff_agent a, me
    WHERE a.status = 'online' AND 'agent' = ANY (a.roles)
      AND (me.group_id IS NULL OR EXISTS (SELECT 1 FROM handoff_member m WHERE m.agent_id = a.id AND m.group_id = me.group_id))
), handled AS (
    SELECT extract(epoch FROM avg(r.closed_at - coalesce(r.accepted_at, r.assigned_at))) AS aht
    FROM handoff_request r, me
    WHERE r.state = 'closed' AND r.group_id IS NOT DISTINCT FROM me.group_id AND r.closed_at > $2::timestamptz - interval '1 day'
)
SELECT ahead.n, agents.n, agents.slots, coalesce(handled.aht, 0), coalesce(me.group_id, 0),
       extract(epoch FROM $2::timestamptz - me.queued_at)
FROM me, ahead, agents, handled`
	var w Wait
	var slots int
	var aht, queued float64
	err := q.pool.QueryRow(ctx, sql, sessionID, q.Now()).Scan(&w.Position, &w.Online, &slots, &aht, &w.GroupID, &queued)
	if errors.Is(err, pgx.ErrNoRows) {
		return Wait{}, nil
	}
	if err != nil {
		return Wait{}, kefu.E(op, kefu.Unavailable, err)
	}
	if aht <= 0 {
		aht = 180 // no history yet: three minutes a conversation
	}
	if slots > 0 {
		w.Estimated = time.Duration(float64(w.Position) * aht / float64(slots) * float64(time.Second))
	}
	w.QueuedFor = time.Duration(queued * float64(time.Second))
	return w, nil
}

// Open lists the conversations an agent holds (offered or accepted), oldest first.
func (q *Queue) Open(ctx context.Context, agentID int64) ([]Assignment, error) {
	return q.assignments(ctx, q.pool, "r.agent_id = $1 AND r.state = 'assigned' ORDER BY r.assigned_at", agentID)
}

// Current is the open request of a session, if any: queued (AgentID 0) or assigned.
func (q *Queue) Current(ctx context.Context, sessionID int64) (Assignment, bool, error) {
	as, err := q.assignments(ctx, q.pool, "r.session_id = $1 AND r.state IN ('queued', 'assigned')", sessionID)
	if err != nil || len(as) == 0 {
		return Assignment{}, false, err
	}
	return as[0], true, nil
}

const assignmentColumns = `r.id, r.session_id, coalesce(r.agent_id, 0), coalesce(r.group_id, 0), coalesce(g.name, ''),
r.reason, r.language, r.channel, r.priority, r.profile, r.handoff_note, r.transfers, r.enqueued_at,
coalesce(r.assigned_at, r.enqueued_at), r.accepted_at IS NOT NULL,
coalesce(r.assigned_at, r.enqueued_at) + make_interval(secs => coalesce(g.accept_seconds, 30))`

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func (q *Queue) assignments(ctx context.Context, db querier, where string, args ...any) ([]Assignment, error) {
	rows, err := db.Query(ctx, `SELECT `+assignmentColumns+`
FROM handoff_request r LEFT JOIN handoff_group g ON g.id = r.group_id WHERE `+where, args...)
	if err != nil {
		return nil, kefu.E("handoff.assignments", kefu.Unavailable, err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Assignment, error) {
		var a Assignment
		var profile []byte
		err := row.Scan(&a.RequestID, &a.SessionID, &a.AgentID, &a.GroupID, &a.Group, &a.Reason, &a.Language, &a.Channel,
			&a.Priority, &profile, &a.Note, &a.Transfers, &a.Enqueued, &a.Assigned, &a.Accepted, &a.AcceptBy)
		if err == nil {
			err = json.Unmarshal(profile, &a.Profile)
		}
		return a, err
	})
}

// Run routes until ctx ends: whenever Wake is called or another instance enqueues (LISTEN on
// NotifyChannel), and every interval, when it also lets lapsed offers go to someone else,
// overflows requests past their group's SLA, and marks silent consoles away.
func (q *Queue) Run(ctx context.Context, interval time.Duration) {
	go q.listen(ctx)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		q.routeAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		case <-t.C:
			if _, err := q.Sweep(ctx); err != nil && ctx.Err() == nil {
				q.log.WarnContext(ctx, "queue sweep failed; will retry", "err", err)
			}
		}
	}
}

func (q *Queue) routeAll(ctx context.Context) {
	for ctx.Err() == nil {
		as, err := q.Route(ctx)
		if err != nil {
			if ctx.Err() == nil {
				q.log.WarnContext(ctx, "routing failed; will retry", "err", err)
			}
			return
		}
		if len(as) == 0 {
			return
		}
	}
}

// listen wakes the router when any instance enqueues, reconnecting when the database goes.
func (q *Queue) listen(ctx context.Context) {
	for ctx.Err() == nil {
		err := func() error {
			c, err := q.pool.Acquire(ctx)
			if err != nil {
				return err
			}
			defer c.Release()
			var channel string
			if err := c.QueryRow(ctx, `SELECT `+channelSQL).Scan(&channel); err != nil {
				return err
			}
			if _, err := c.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
				return err
			}
			for {
				if _, err := c.Conn().WaitForNotification(ctx); err != nil {
					c.Conn().Close(context.Background()) //nolint:errcheck // dropping a broken or listening conn
					return err
				}
				q.Wake()
			}
		}()
		if ctx.Err() != nil {
			return
		}
		q.log.WarnContext(ctx, "queue listener lost its connection; reconnecting", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
		q.Wake() // what was enqueued meanwhile
	}
}
