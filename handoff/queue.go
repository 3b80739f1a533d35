package handoff

import (
	"context"
	"errors"
	"log/slog"
	"strings"
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
	SessionID int64     `json:"session_id"`
	AgentID   int64     `json:"agent_id"`
	Reason    string    `json:"reason"`
	Language  string    `json:"language"`
	Enqueued  time.Time `json:"enqueued_at"`
}

// AssignHook runs in the transaction that assigns a conversation, so that whoever owns the
// conversation (dialog) records the new owner atomically with the queue.
type AssignHook func(ctx context.Context, tx pgx.Tx, a Assignment) error

// Queue is the routing queue in PostgreSQL.
type Queue struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	wake chan struct{}
}

// NewQueue returns the queue.
func NewQueue(pool *pgxpool.Pool, log *slog.Logger) *Queue {
	return &Queue{pool: pool, log: log.With("component", "handoff"), wake: make(chan struct{}, 1)}
}

// Enqueue adds a request inside the caller's transaction. A session that already has an open
// request keeps it; Enqueue then reports false.
func (q *Queue) Enqueue(ctx context.Context, tx pgx.Tx, r Request) (bool, error) {
	const op = "handoff.Enqueue"
	const sql = `
INSERT INTO handoff_request (session_id, language, reason, priority)
VALUES ($1, $2, $3, $4)
ON CONFLICT (session_id) WHERE state IN ('queued', 'assigned') DO NOTHING`
	tag, err := tx.Exec(ctx, sql, r.SessionID, r.Language, r.Reason, r.Priority)
	if err != nil {
		return false, kefu.E(op, kefu.Unavailable, err)
	}
	return tag.RowsAffected() == 1, nil
}

// Wake tells the router that there may be work; it never blocks.
func (q *Queue) Wake() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Position is the 1-based place of the session's queued request (0 when not queued).
func (q *Queue) Position(ctx context.Context, sessionID int64) (int, error) {
	const sql = `
SELECT count(*) FROM handoff_request r, handoff_request me
WHERE me.session_id = $1 AND me.state = 'queued' AND r.state = 'queued'
  AND (r.priority > me.priority OR (r.priority = me.priority AND r.enqueued_at <= me.enqueued_at))`
	var n int
	if err := q.pool.QueryRow(ctx, sql, sessionID).Scan(&n); err != nil {
		return 0, kefu.E("handoff.Position", kefu.Unavailable, err)
	}
	return n, nil
}

// AssignNext gives the first queued request that an online agent has room for to the
// least-busy such agent, and runs hook in the same transaction. It reports false when nothing
// could be assigned.
func (q *Queue) AssignNext(ctx context.Context, hook AssignHook) (Assignment, bool, error) {
	const op = "handoff.AssignNext"
	tx, err := q.pool.Begin(ctx)
	if err != nil {
		return Assignment{}, false, kefu.E(op, kefu.Unavailable, err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after Commit
	// Requests in priority order, FIFO within one; a request another router holds is skipped.
	const next = `
SELECT id, session_id, language, reason, enqueued_at FROM handoff_request
WHERE state = 'queued'
ORDER BY priority DESC, enqueued_at, id
LIMIT 20
FOR UPDATE SKIP LOCKED`
	rows, err := tx.Query(ctx, next)
	if err != nil {
		return Assignment{}, false, kefu.E(op, kefu.Unavailable, err)
	}
	type queued struct {
		id int64
		a  Assignment
	}
	var list []queued
	for rows.Next() {
		var r queued
		if err := rows.Scan(&r.id, &r.a.SessionID, &r.a.Language, &r.a.Reason, &r.a.Enqueued); err != nil {
			rows.Close()
			return Assignment{}, false, kefu.E(op, kefu.Unavailable, err)
		}
		list = append(list, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Assignment{}, false, kefu.E(op, kefu.Unavailable, err)
	}
	// The least-busy online agent who speaks the language and is under capacity. Locking the
	// agent's row serialises assignments to one agent, so capacity holds under concurrency.
	const agent = `
SELECT a.id FROM handoff_agent a
WHERE a.status = 'online' AND 'agent' = ANY (a.roles)
  AND (cardinality(a.languages) = 0 OR $1 = '' OR $1 = ANY (a.languages))
  AND (SELECT count(*) FROM handoff_request r WHERE r.agent_id = a.id AND r.state = 'assigned') < a.max_chats
ORDER BY (SELECT count(*) FROM handoff_request r WHERE r.agent_id = a.id AND r.state = 'assigned'),
         a.last_assigned_at NULLS FIRST, a.id
LIMIT 1
FOR UPDATE OF a SKIP LOCKED`
	for _, r := range list {
		err := tx.QueryRow(ctx, agent, r.a.Language).Scan(&r.a.AgentID)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return Assignment{}, false, kefu.E(op, kefu.Unavailable, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE handoff_request SET state = 'assigned', agent_id = $2, assigned_at = now() WHERE id = $1`, r.id, r.a.AgentID); err != nil {
			return Assignment{}, false, kefu.E(op, kefu.Unavailable, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE handoff_agent SET last_assigned_at = now() WHERE id = $1`, r.a.AgentID); err != nil {
			return Assignment{}, false, kefu.E(op, kefu.Unavailable, err)
		}
		if hook != nil {
			if err := hook(ctx, tx, r.a); err != nil {
				return Assignment{}, false, kefu.E(op, "", err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			return Assignment{}, false, kefu.E(op, kefu.Unavailable, err)
		}
		q.log.InfoContext(ctx, "conversation assigned", "session_id", r.a.SessionID, "agent_id", r.a.AgentID, "reason", r.a.Reason)
		return r.a, true, nil
	}
	return Assignment{}, false, nil
}

// Close ends the open request of a session inside the caller's transaction, with a
// disposition ("resolved", …). It reports false when the session had none.
func (q *Queue) Close(ctx context.Context, tx pgx.Tx, sessionID int64, disposition string) (bool, error) {
	tag, err := tx.Exec(ctx, `
UPDATE handoff_request SET state = 'closed', closed_at = now(), disposition = $2
WHERE session_id = $1 AND state IN ('queued', 'assigned')`, sessionID, disposition)
	if err != nil {
		return false, kefu.E("handoff.Close", kefu.Unavailable, err)
	}
	return tag.RowsAffected() > 0, nil
}

// Open lists the sessions currently assigned to an agent.
func (q *Queue) Open(ctx context.Context, agentID int64) ([]Assignment, error) {
	rows, err := q.pool.Query(ctx, `
SELECT session_id, agent_id, reason, language, enqueued_at FROM handoff_request
WHERE agent_id = $1 AND state = 'assigned' ORDER BY assigned_at`, agentID)
	if err != nil {
		return nil, kefu.E("handoff.Open", kefu.Unavailable, err)
	}
	defer rows.Close()
	var out []Assignment
	for rows.Next() {
		var a Assignment
		if err := rows.Scan(&a.SessionID, &a.AgentID, &a.Reason, &a.Language, &a.Enqueued); err != nil {
			return nil, kefu.E("handoff.Open", kefu.Unavailable, err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// Run assigns queued conversations until ctx ends: whenever Wake is called and every interval
// (agents come online, capacity frees up). onAssigned is called after each commit.
func (q *Queue) Run(ctx context.Context, interval time.Duration, hook AssignHook, onAssigned func(context.Context, Assignment)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for {
			a, ok, err := q.AssignNext(ctx, hook)
			if err != nil {
				if ctx.Err() == nil {
					q.log.WarnContext(ctx, "routing failed; will retry", "err", err)
				}
				break
			}
			if !ok {
				break
			}
			if onAssigned != nil {
				onAssigned(ctx, a)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		case <-t.C:
		}
	}
}
