package handoff

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/kefu-dev/kefu"
)

// Dispositions an agent closes a conversation with.
var Dispositions = []string{"resolved", "unresolved", "follow_up", "spam", "duplicate", "transferred_out", "customer_left", "offline_ticket"}

func validDisposition(d string) bool {
	for _, x := range Dispositions {
		if x == d {
			return true
		}
	}
	return false
}

// Close ends the open request of a session inside the caller's transaction, with a
// disposition, and frees the agent's slot. It reports false when the session had none.
func (q *Queue) Close(ctx context.Context, tx pgx.Tx, sessionID int64, disposition string) (bool, error) {
	const op = "handoff.Close"
	if disposition == "" {
		disposition = "resolved"
	}
	if !validDisposition(disposition) {
		return false, kefu.Errorf(op, kefu.Invalid, "unknown disposition %q (one of %v)", disposition, Dispositions)
	}
	return q.end(ctx, tx, op, sessionID, "closed", disposition, "state IN ('queued', 'assigned')")
}

// Abandon records that a waiting customer stopped waiting (left the queue or went away before
// anyone took the conversation). It reports false when the session was not waiting.
func (q *Queue) Abandon(ctx context.Context, tx pgx.Tx, sessionID int64) (bool, error) {
	return q.end(ctx, tx, "handoff.Abandon", sessionID, "abandoned", "abandoned", "state = 'queued'")
}

func (q *Queue) end(ctx context.Context, tx pgx.Tx, op string, sessionID int64, state, disposition, where string) (bool, error) {
	var agent *int64
	err := tx.QueryRow(ctx, `
UPDATE handoff_request SET state = $2, closed_at = $4, disposition = $3
WHERE session_id = $1 AND `+where+`
RETURNING agent_id`, sessionID, state, disposition, q.Now()).Scan(&agent)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, kefu.E(op, kefu.Unavailable, err)
	}
	if agent != nil {
		if _, err := tx.Exec(ctx, "UPDATE handoff_agent SET active_chats = active_chats - 1 WHERE id = $1", *agent); err != nil {
			return false, kefu.E(op, kefu.Unavailable, err)
		}
	}
	if _, err := tx.Exec(ctx, notifySQL); err != nil { // a slot is free
		return false, kefu.E(op, kefu.Unavailable, err)
	}
	return true, nil
}

// Accept is the agent taking an offered conversation; an offer that is not accepted or
// answered within its group's accept time goes to someone else.
func (q *Queue) Accept(ctx context.Context, agentID, sessionID int64) error {
	tag, err := q.pool.Exec(ctx, `
UPDATE handoff_request SET accepted_at = coalesce(accepted_at, $3)
WHERE session_id = $1 AND agent_id = $2 AND state = 'assigned'`, sessionID, agentID, q.Now())
	if err != nil {
		return kefu.E("handoff.Accept", kefu.Unavailable, err)
	}
	if tag.RowsAffected() == 0 {
		return kefu.Errorf("handoff.Accept", kefu.NotFound, "conversation %d is not assigned to you", sessionID)
	}
	return nil
}

// Responded records, in the reply's transaction, that the agent answered: the first
// response (FRT) and an implicit accept.
func (q *Queue) Responded(ctx context.Context, tx pgx.Tx, agentID, sessionID int64) error {
	now := q.Now()
	_, err := tx.Exec(ctx, `
UPDATE handoff_request SET accepted_at = coalesce(accepted_at, $3), first_response_at = coalesce(first_response_at, $3)
WHERE session_id = $1 AND agent_id = $2 AND state = 'assigned'`, sessionID, agentID, now)
	if err != nil {
		return kefu.E("handoff.Responded", kefu.Unavailable, err)
	}
	return nil
}

// Transfer is where a conversation goes from its agent: to another agent, who must be online
// with room, or to a skill group with someone online, where it waits again ahead of newer
// requests of its priority. The note travels with it.
type Transfer struct {
	SessionID int64  `json:"session_id"`
	ToAgent   int64  `json:"to_agent,omitempty"`
	ToGroup   string `json:"to_group,omitempty"`
	Note      string `json:"note,omitempty"`
}

// Transfer moves a conversation that agentID holds (any, when byID is a supervisor: pass
// asSupervisor). It returns the new assignment (AgentID 0 when it went to a group's queue).
func (q *Queue) Transfer(ctx context.Context, agentID int64, asSupervisor bool, t Transfer) (Assignment, error) {
	const op = "handoff.Transfer"
	if (t.ToAgent == 0) == (t.ToGroup == "") {
		return Assignment{}, kefu.Errorf(op, kefu.Invalid, "transfer to exactly one of an agent or a group")
	}
	if len(t.Note) > 2000 {
		return Assignment{}, kefu.Errorf(op, kefu.Invalid, "a transfer note is at most 2000 bytes")
	}
	owner, notify := q.hooks()
	var out Assignment
	err := pgx.BeginFunc(ctx, q.pool, func(tx pgx.Tx) error {
		var reqID, from int64
		err := tx.QueryRow(ctx, `
SELECT id, agent_id FROM handoff_request WHERE session_id = $1 AND state = 'assigned' FOR UPDATE`, t.SessionID).Scan(&reqID, &from)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && from != agentID && !asSupervisor) {
			return kefu.Errorf(op, kefu.NotFound, "conversation %d is not assigned to you", t.SessionID)
		}
		if err != nil {
			return kefu.E(op, kefu.Unavailable, err)
		}
		now := q.Now()
		if t.ToAgent != 0 {
			if t.ToAgent == from {
				return kefu.Errorf(op, kefu.Invalid, "the conversation is already with agent %d", from)
			}
			var status string
			var room bool
			err := tx.QueryRow(ctx, `
SELECT status, active_chats < max_chats AND 'agent' = ANY (roles) FROM handoff_agent WHERE id = $1 FOR UPDATE`, t.ToAgent).Scan(&status, &room)
			if errors.Is(err, pgx.ErrNoRows) {
				return kefu.Errorf(op, kefu.NotFound, "no agent %d", t.ToAgent)
			}
			if err != nil {
				return kefu.E(op, kefu.Unavailable, err)
			}
			if status != Online {
				return kefu.Errorf(op, kefu.Conflict, "agent %d is %s", t.ToAgent, status)
			}
			if !room {
				return kefu.Errorf(op, kefu.Conflict, "agent %d has no room for another conversation", t.ToAgent)
			}
			if _, err := tx.Exec(ctx, `
UPDATE handoff_request SET agent_id = $2, assigned_at = $3, accepted_at = NULL, transfers = transfers + 1, handoff_note = $4
WHERE id = $1`, reqID, t.ToAgent, now, t.Note); err != nil {
				return kefu.E(op, kefu.Unavailable, err)
			}
			if _, err := tx.Exec(ctx, `
UPDATE handoff_agent SET active_chats = active_chats + CASE WHEN id = $2 THEN 1 ELSE -1 END,
       last_assigned_at = CASE WHEN id = $2 THEN $3 ELSE last_assigned_at END
WHERE id IN ($1, $2)`, from, t.ToAgent, now); err != nil {
				return kefu.E(op, kefu.Unavailable, err)
			}
			as, err := q.assignments(ctx, tx, "r.id = $1", reqID)
			if err != nil {
				return err
			}
			out = as[0]
			if owner != nil {
				return owner.Assigned(ctx, tx, as)
			}
			return nil
		}
		var gid int64
		var online int
		err = tx.QueryRow(ctx, `
SELECT g.id, (SELECT count(*) FROM handoff_member m JOIN handoff_agent a ON a.id = m.agent_id
              WHERE m.group_id = g.id AND a.status = 'online' AND 'agent' = ANY (a.roles) AND a.id <> $2)
FROM handoff_group g WHERE g.name = $1`, t.ToGroup, from).Scan(&gid, &online)
		if errors.Is(err, pgx.ErrNoRows) {
			return kefu.Errorf(op, kefu.NotFound, "no skill group %q", t.ToGroup)
		}
		if err != nil {
			return kefu.E(op, kefu.Unavailable, err)
		}
		if online == 0 {
			return kefu.Errorf(op, kefu.Conflict, "nobody is online in group %q", t.ToGroup)
		}
		if _, err := tx.Exec(ctx, `
UPDATE handoff_request SET state = 'queued', agent_id = NULL, group_id = $2, group_since = $3, queued_at = enqueued_at,
       accepted_at = NULL, transfers = transfers + 1, handoff_note = $4, declined = ARRAY[$5::bigint]
WHERE id = $1`, reqID, gid, now, t.Note, from); err != nil {
			return kefu.E(op, kefu.Unavailable, err)
		}
		if _, err := tx.Exec(ctx, "UPDATE handoff_agent SET active_chats = active_chats - 1 WHERE id = $1", from); err != nil {
			return kefu.E(op, kefu.Unavailable, err)
		}
		if _, err := tx.Exec(ctx, notifySQL); err != nil {
			return kefu.E(op, kefu.Unavailable, err)
		}
		as, err := q.assignments(ctx, tx, "r.id = $1", reqID)
		if err != nil {
			return err
		}
		out = as[0]
		if owner != nil {
			return owner.Requeued(ctx, tx, []int64{t.SessionID})
		}
		return nil
	})
	if err != nil {
		return Assignment{}, err
	}
	if out.AgentID != 0 && notify != nil {
		notify(ctx, []Assignment{out})
	}
	q.Wake()
	return out, nil
}

// SweepResult counts what a sweep changed.
type SweepResult struct {
	Lapsed     int // offers that went back to the queue
	Overflowed int // requests moved to their group's overflow group
	Away       int // agents marked away for silent consoles
}

// Sweep lets offers that were neither accepted nor answered in time go back to the queue (not
// to the same agent next), moves requests that waited past their group's SLA to its overflow
// group, and marks agents whose console stopped beating away.
func (q *Queue) Sweep(ctx context.Context) (SweepResult, error) {
	const op = "handoff.Sweep"
	owner, _ := q.hooks()
	q.mu.Lock()
	onLapsed := q.lapsed
	q.mu.Unlock()
	var res SweepResult
	var lapses []Lapse
	now := q.Now()
	err := pgx.BeginFunc(ctx, q.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
WITH lapsed AS (
    SELECT r.id, r.agent_id FROM handoff_request r LEFT JOIN handoff_group g ON g.id = r.group_id
    WHERE r.state = 'assigned' AND r.accepted_at IS NULL
      AND r.assigned_at < $1::timestamptz - make_interval(secs => coalesce(g.accept_seconds, 30))
    FOR UPDATE OF r SKIP LOCKED
)
UPDATE handoff_request r SET state = 'queued', declined = ARRAY[r.agent_id], agent_id = NULL,
       reassignments = r.reassignments + 1, assigned_at = NULL
FROM lapsed WHERE r.id = lapsed.id
RETURNING r.session_id, lapsed.agent_id`, now)
		if err != nil {
			return kefu.E(op, kefu.Unavailable, err)
		}
		var sessions, agents []int64
		for rows.Next() {
			var s int64
			var a *int64
			if err := rows.Scan(&s, &a); err != nil {
				rows.Close()
				return kefu.E(op, kefu.Unavailable, err)
			}
			sessions = append(sessions, s)
			if a != nil {
				agents = append(agents, *a)
				lapses = append(lapses, Lapse{SessionID: s, AgentID: *a})
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return kefu.E(op, kefu.Unavailable, err)
		}
		res.Lapsed = len(sessions)
		if len(sessions) > 0 {
			if len(agents) != len(sessions) {
				return kefu.Errorf(op, kefu.Internal, "lapsed offers without their agent")
			}
			// An agent who let an offer lapse is not at the desk: away, until they say otherwise.
			if _, err := tx.Exec(ctx, `
UPDATE handoff_agent a SET active_chats = a.active_chats - v.n,
       status = CASE WHEN a.status = 'online' THEN 'away' ELSE a.status END
FROM (SELECT id, count(*)::int AS n FROM unnest($1::bigint[]) AS id GROUP BY id) v WHERE a.id = v.id`, agents); err != nil {
				return kefu.E(op, kefu.Unavailable, err)
			}
			if owner != nil {
				if err := owner.Requeued(ctx, tx, sessions); err != nil {
					return err
				}
			}
		}
		tag, err := tx.Exec(ctx, `
UPDATE handoff_request r SET group_id = v.overflow_group, group_since = $1, overflowed = true
FROM (SELECT b.id, g.overflow_group FROM handoff_request b JOIN handoff_group g ON g.id = b.group_id
      WHERE b.state = 'queued' AND g.overflow_group IS NOT NULL
        AND b.group_since < $1::timestamptz - make_interval(secs => g.sla_seconds)
      FOR UPDATE OF b SKIP LOCKED) v
WHERE r.id = v.id`, now)
		if err != nil {
			return kefu.E(op, kefu.Unavailable, err)
		}
		res.Overflowed = int(tag.RowsAffected())
		if q.HeartbeatTimeout > 0 {
			tag, err = tx.Exec(ctx, `
UPDATE handoff_agent SET status = 'away', auto_away = true
WHERE status = 'online' AND last_seen < $1`, now.Add(-q.HeartbeatTimeout))
			if err != nil {
				return kefu.E(op, kefu.Unavailable, err)
			}
			res.Away = int(tag.RowsAffected())
		}
		if res.Lapsed+res.Overflowed > 0 {
			if _, err := tx.Exec(ctx, notifySQL); err != nil {
				return kefu.E(op, kefu.Unavailable, err)
			}
		}
		return nil
	})
	if err != nil {
		return SweepResult{}, err
	}
	if res.Lapsed+res.Overflowed+res.Away > 0 {
		q.log.InfoContext(ctx, "queue sweep", "lapsed", res.Lapsed, "overflowed", res.Overflowed, "away", res.Away)
	}
	if len(lapses) > 0 && onLapsed != nil {
		onLapsed(ctx, lapses)
	}
	return res, nil
}

// Heartbeat records that an agent's console is alive; an agent made away by silence comes back
// online.
func (a *Agents) Heartbeat(ctx context.Context, agentID int64) error {
	_, err := a.pool.Exec(ctx, `
UPDATE handoff_agent SET last_seen = $2, status = CASE WHEN auto_away THEN 'online' ELSE status END, auto_away = false
WHERE id = $1`, agentID, a.now())
	if err != nil {
		return kefu.E("handoff.Heartbeat", kefu.Unavailable, err)
	}
	return nil
}

// Hold locks the session's open request, if any, in the caller's transaction. Whatever changes
// a request and its session takes the request first, as the router does, so the two locks are
// always taken in one order.
func (q *Queue) Hold(ctx context.Context, tx pgx.Tx, sessionID int64) error {
	rows, err := tx.Query(ctx, `SELECT 1 FROM handoff_request WHERE session_id = $1 AND state IN ('queued', 'assigned') FOR UPDATE`, sessionID)
	if err != nil {
		return kefu.E("handoff.Hold", kefu.Unavailable, err)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return kefu.E("handoff.Hold", kefu.Unavailable, err)
	}
	return nil
}
