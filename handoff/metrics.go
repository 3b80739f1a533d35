package handoff

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kefu-dev/kefu"
)

// Live is the supervisor's view of the desk right now.
type Live struct {
	Groups []GroupLive `json:"groups"`
	Agents []AgentLive `json:"agents"`
	// AtRisk are waiting conversations past 80% of their group's SLA, longest first.
	AtRisk []Waiting `json:"at_risk"`
}

// GroupLive is one skill group's queue ("" with ID 0: requests routed to any agent).
type GroupLive struct {
	ID          int64   `json:"id"`
	Name        string  `json:"name"`
	Tier        int     `json:"tier"`
	Waiting     int     `json:"waiting"`
	LongestWait float64 `json:"longest_wait_seconds"`
	SLASeconds  int     `json:"sla_seconds"`
	Breached    int     `json:"breached"` // waiting longer than the SLA
	Online      int     `json:"online"`   // members online
	Free        int     `json:"free"`     // free slots among members online
}

// AgentLive is an agent's presence and load.
type AgentLive struct {
	ID       int64     `json:"id"`
	Name     string    `json:"name"`
	Status   string    `json:"status"`
	Active   int       `json:"active"`
	Max      int       `json:"max"`
	Groups   []string  `json:"groups"`
	LastSeen time.Time `json:"last_seen"`
}

// Waiting is a conversation in the queue.
type Waiting struct {
	SessionID int64   `json:"session_id"`
	Group     string  `json:"group"`
	Priority  int     `json:"priority"`
	Reason    string  `json:"reason"`
	Language  string  `json:"language"`
	Waited    float64 `json:"waited_seconds"`
	SLA       int     `json:"sla_seconds"`
}

// Live reads the desk's current state.
func (q *Queue) Live(ctx context.Context) (Live, error) {
	const op = "handoff.Live"
	now := q.Now()
	var l Live
	rows, err := q.pool.Query(ctx, `
WITH w AS (
    SELECT coalesce(group_id, 0) AS gid, count(*) AS n, max(extract(epoch FROM $1::timestamptz - queued_at)) AS longest,
           count(*) FILTER (WHERE r.group_since < $1::timestamptz - make_interval(secs => coalesce(g.sla_seconds, 60))) AS breached
    FROM handoff_request r LEFT JOIN handoff_group g ON g.id = r.group_id WHERE r.state = 'queued' GROUP BY 1
), m AS (
    SELECT m.group_id AS gid, count(*) FILTER (WHERE a.status = 'online') AS online,
           coalesce(sum(greatest(a.max_chats - a.active_chats, 0)) FILTER (WHERE a.status = 'online'), 0) AS free
    FROM handoff_member m JOIN handoff_agent a ON a.id = m.agent_id GROUP BY 1
), all_agents AS (
    SELECT 0::bigint AS gid, count(*) FILTER (WHERE status = 'online') AS online,
           coalesce(sum(greatest(max_chats - active_chats, 0)) FILTER (WHERE status = 'online'), 0) AS free
    FROM handoff_agent WHERE 'agent' = ANY (roles)
), g AS (
    SELECT id, name, tier, sla_seconds FROM handoff_group UNION ALL SELECT 0, '', 0, 60
)
SELECT g.id, g.name, g.tier, coalesce(w.n, 0), coalesce(w.longest, 0), g.sla_seconds, coalesce(w.breached, 0),
       coalesce(CASE WHEN g.id = 0 THEN aa.online ELSE m.online END, 0), coalesce(CASE WHEN g.id = 0 THEN aa.free ELSE m.free END, 0)
FROM g LEFT JOIN w ON w.gid = g.id LEFT JOIN m ON m.gid = g.id CROSS JOIN all_agents aa
WHERE g.id <> 0 OR w.n > 0
ORDER BY g.tier, g.name`, now)
	if err != nil {
		return Live{}, kefu.E(op, kefu.Unavailable, err)
	}
	l.Groups, err = pgx.CollectRows(rows, pgx.RowToStructByPos[GroupLive])
	if err != nil {
		return Live{}, kefu.E(op, kefu.Unavailable, err)
	}
	rows, err = q.pool.Query(ctx, `
SELECT a.id, a.name, a.status, a.active_chats, a.max_chats,
       coalesce((SELECT array_agg(g.name ORDER BY g.name) FROM handoff_member m JOIN handoff_group g ON g.id = m.group_id
                 WHERE m.agent_id = a.id), '{}'),
       coalesce(a.last_seen, a.created_at)
FROM handoff_agent a WHERE 'agent' = ANY (a.roles) ORDER BY a.status = 'offline', a.name`)
	if err != nil {
		return Live{}, kefu.E(op, kefu.Unavailable, err)
	}
	l.Agents, err = pgx.CollectRows(rows, pgx.RowToStructByPos[AgentLive])
	if err != nil {
		return Live{}, kefu.E(op, kefu.Unavailable, err)
	}
	rows, err = q.pool.Query(ctx, `
SELECT r.session_id, coalesce(g.name, ''), r.priority, r.reason, r.language,
       extract(epoch FROM $1::timestamptz - r.queued_at)::float8, coalesce(g.sla_seconds, 60)
FROM handoff_request r LEFT JOIN handoff_group g ON g.id = r.group_id
WHERE r.state = 'queued' AND r.group_since < $1::timestamptz - make_interval(secs => 0.8 * coalesce(g.sla_seconds, 60))
ORDER BY r.queued_at LIMIT 50`, now)
	if err != nil {
		return Live{}, kefu.E(op, kefu.Unavailable, err)
	}
	l.AtRisk, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Waiting])
	if err != nil {
		return Live{}, kefu.E(op, kefu.Unavailable, err)
	}
	return l, nil
}

// Stats are the service metrics of a set of conversations handed to people.
type Stats struct {
	Key          string  `json:"key"`          // the agent's or group's name, or the day
	ID           int64   `json:"id,omitempty"` // the agent's or group's id
	Escalated    int     `json:"escalated"`    // requests made
	Assigned     int     `json:"assigned"`     // taken by a person
	Closed       int     `json:"closed"`       //
	Abandoned    int     `json:"abandoned"`    // customers who stopped waiting
	Transferred  int     `json:"transferred"`  // conversations transferred at least once
	AvgWait      float64 `json:"avg_wait_seconds"`
	P90Wait      float64 `json:"p90_wait_seconds"`
	AvgFRT       float64 `json:"avg_first_response_seconds"` // enqueue → the agent's first reply
	AvgHandle    float64 `json:"avg_handle_seconds"`         // accepted → closed (AHT)
	SLAMet       float64 `json:"sla_met"`                    // share assigned within the group's SLA
	AbandonRate  float64 `json:"abandon_rate"`
	TransferRate float64 `json:"transfer_rate"`
	CSATCount    int     `json:"csat_count"`
	CSAT         float64 `json:"csat_avg"`       // 1–5
	CSATShare    float64 `json:"csat_satisfied"` // share of 4 and 5
}

// Report is the desk's metrics over a period, overall and per agent, group and day, with the
// bot's containment: the share of conversations the bot closed without a person.
type Report struct {
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	Total       Stats     `json:"total"`
	ByAgent     []Stats   `json:"by_agent"`
	ByGroup     []Stats   `json:"by_group"`
	ByDay       []Stats   `json:"by_day"`
	Sessions    int       `json:"sessions"`    // conversations in which the customer wrote
	Contained   int       `json:"contained"`   // … and that never asked for a person
	Containment float64   `json:"containment"` // contained / sessions
	Tickets     int       `json:"tickets"`     // messages left while nobody was online
}

const statsSelect = `
count(*),
count(*) FILTER (WHERE r.first_assigned_at IS NOT NULL),
count(*) FILTER (WHERE r.state = 'closed'),
count(*) FILTER (WHERE r.state = 'abandoned'),
count(*) FILTER (WHERE r.transfers > 0),
coalesce(avg(extract(epoch FROM r.first_assigned_at - r.enqueued_at)), 0)::float8,
coalesce(percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM r.first_assigned_at - r.enqueued_at)), 0)::float8,
coalesce(avg(extract(epoch FROM r.first_response_at - r.enqueued_at)), 0)::float8,
coalesce(avg(extract(epoch FROM r.closed_at - coalesce(r.accepted_at, r.assigned_at))) FILTER (WHERE r.state = 'closed' AND r.agent_id IS NOT NULL), 0)::float8,
coalesce(avg(CASE WHEN r.first_assigned_at - r.enqueued_at <= make_interval(secs => coalesce(g.sla_seconds, 60)) THEN 1.0 ELSE 0.0 END)
         FILTER (WHERE r.first_assigned_at IS NOT NULL OR r.state = 'abandoned'), 0)::float8,
count(r.csat), coalesce(avg(r.csat), 0)::float8, coalesce(avg(CASE WHEN r.csat >= 4 THEN 1.0 ELSE 0.0 END) FILTER (WHERE r.csat IS NOT NULL), 0)::float8`

func scanStats(row pgx.Row, s *Stats, extra ...any) error {
	dest := append(extra, &s.Escalated, &s.Assigned, &s.Closed, &s.Abandoned, &s.Transferred, &s.AvgWait, &s.P90Wait,
		&s.AvgFRT, &s.AvgHandle, &s.SLAMet, &s.CSATCount, &s.CSAT, &s.CSATShare)
	if err := row.Scan(dest...); err != nil {
		return err
	}
	if s.Escalated > 0 {
		s.AbandonRate = float64(s.Abandoned) / float64(s.Escalated)
	}
	if s.Assigned > 0 {
		s.TransferRate = float64(s.Transferred) / float64(s.Assigned)
	}
	return nil
}

// Report computes the metrics of requests enqueued in [from, to). The day is UTC.
func (q *Queue) Report(ctx context.Context, from, to time.Time) (Report, error) {
	const op = "handoff.Report"
	rep := Report{From: from, To: to}
	base := ` FROM handoff_request r LEFT JOIN handoff_group g ON g.id = r.group_id
LEFT JOIN handoff_agent a ON a.id = r.agent_id WHERE r.enqueued_at >= $1 AND r.enqueued_at < $2`
	if err := scanStats(q.pool.QueryRow(ctx, `SELECT `+statsSelect+base, from, to), &rep.Total); err != nil {
		return Report{}, kefu.E(op, kefu.Unavailable, err)
	}
	rep.Total.Key = "total"
	for _, by := range []struct {
		key, id string
		out     *[]Stats
	}{
		{"coalesce(a.name, '')", "coalesce(r.agent_id, 0)", &rep.ByAgent},
		{"coalesce(g.name, '')", "coalesce(r.group_id, 0)", &rep.ByGroup},
		{"to_char(r.enqueued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')", "0", &rep.ByDay},
	} {
		rows, err := q.pool.Query(ctx, `SELECT `+by.key+`, `+by.id+`, `+statsSelect+base+` GROUP BY 1, 2 ORDER BY 1`, from, to)
		if err != nil {
			return Report{}, kefu.E(op, kefu.Unavailable, err)
		}
		for rows.Next() {
			var s Stats
			if err := scanStats(rows, &s, &s.Key, &s.ID); err != nil {
				rows.Close()
				return Report{}, kefu.E(op, kefu.Unavailable, err)
			}
			*by.out = append(*by.out, s)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return Report{}, kefu.E(op, kefu.Unavailable, err)
		}
		if *by.out == nil {
			*by.out = []Stats{}
		}
	}
	// Containment needs dialog's sessions; it is read only when they exist here.
	err := q.pool.QueryRow(ctx, `
SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM handoff_request r WHERE r.session_id = s.id))
FROM dialog_session s
WHERE s.created_at >= $1 AND s.created_at < $2 AND s.last_seq > 0
  AND EXISTS (SELECT 1 FROM dialog_message m WHERE m.session_id = s.id AND m.role = 'customer')`, from, to).Scan(&rep.Sessions, &rep.Contained)
	if err != nil && !isUndefinedTable(err) {
		return Report{}, kefu.E(op, kefu.Unavailable, err)
	}
	if rep.Sessions > 0 {
		rep.Containment = float64(rep.Contained) / float64(rep.Sessions)
	}
	if err := q.pool.QueryRow(ctx, `SELECT count(*) FROM handoff_ticket WHERE created_at >= $1 AND created_at < $2`, from, to).Scan(&rep.Tickets); err != nil {
		return Report{}, kefu.E(op, kefu.Unavailable, err)
	}
	return rep, nil
}

func isUndefinedTable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42P01"
}
