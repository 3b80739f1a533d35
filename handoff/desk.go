package handoff

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kefu-dev/kefu"
)

// Group is a skill group: the agents who take one kind of conversation, at one tier.
type Group struct {
	ID            int64             `json:"id"`
	Name          string            `json:"name"`
	Tier          int               `json:"tier"`               // 1, 2 or 3 (L1–L3)
	Languages     []string          `json:"languages"`          // empty: any
	ProfileMatch  map[string]string `json:"profile_match"`      // {"tier":"vip"}: verified profiles that meet it
	Strategy      string            `json:"strategy"`           // least_busy, round_robin, longest_idle
	SLASeconds    int               `json:"sla_seconds"`        // target wait
	Overflow      string            `json:"overflow,omitempty"` // group a request moves to past the SLA
	AcceptSeconds int               `json:"accept_seconds"`     // an offer lapses after
	Members       []int64           `json:"members"`
}

// Desk is everything around the queue that agents and supervisors keep: skill groups, notes,
// canned replies, offline tickets and CSAT.
type Desk struct {
	pool *pgxpool.Pool
	Now  func() time.Time
}

// NewDesk returns the desk.
func NewDesk(pool *pgxpool.Pool) *Desk { return &Desk{pool: pool, Now: time.Now} }

var groupName = regexp.MustCompile(`^[\p{L}\p{N}_. -]{1,64}$`)

// SaveGroup creates a group or, when one has the name, changes it; members replace the old.
func (d *Desk) SaveGroup(ctx context.Context, g Group) (Group, error) {
	const op = "handoff.SaveGroup"
	g.Name = strings.TrimSpace(g.Name)
	switch {
	case !groupName.MatchString(g.Name):
		return Group{}, kefu.Errorf(op, kefu.Invalid, "a group name is 1–64 letters, digits, spaces, '_', '.' or '-'")
	case g.Tier == 0:
		g.Tier = 1
	}
	if g.Tier < 1 || g.Tier > 3 {
		return Group{}, kefu.Errorf(op, kefu.Invalid, "tier must be 1, 2 or 3")
	}
	if g.Strategy == "" {
		g.Strategy = LeastBusy
	}
	if g.Strategy != LeastBusy && g.Strategy != RoundRobin && g.Strategy != LongestIdle {
		return Group{}, kefu.Errorf(op, kefu.Invalid, "strategy must be least_busy, round_robin or longest_idle")
	}
	if g.SLASeconds == 0 {
		g.SLASeconds = 60
	}
	if g.AcceptSeconds == 0 {
		g.AcceptSeconds = 30
	}
	if g.SLASeconds < 0 || g.AcceptSeconds < 0 {
		return Group{}, kefu.Errorf(op, kefu.Invalid, "sla_seconds and accept_seconds must be positive")
	}
	if g.Languages == nil {
		g.Languages = []string{}
	}
	if g.ProfileMatch == nil {
		g.ProfileMatch = map[string]string{}
	}
	for k, v := range g.ProfileMatch {
		if k != "tier" && k != "region" && k != "product" {
			return Group{}, kefu.Errorf(op, kefu.Invalid, "profile_match keys are tier, region and product, not %q", k)
		}
		g.ProfileMatch[k] = strings.ToLower(v)
	}
	match, _ := json.Marshal(g.ProfileMatch)
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		var overflow *int64
		if g.Overflow != "" {
			var id int64
			err := tx.QueryRow(ctx, "SELECT id FROM handoff_group WHERE name = $1", g.Overflow).Scan(&id)
			if errors.Is(err, pgx.ErrNoRows) {
				return kefu.Errorf(op, kefu.Invalid, "overflow group %q does not exist", g.Overflow)
			}
			if err != nil {
				return kefu.E(op, kefu.Unavailable, err)
			}
			overflow = &id
		}
		err := tx.QueryRow(ctx, `
INSERT INTO handoff_group (name, tier, languages, profile_match, strategy, sla_seconds, overflow_group, accept_seconds)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (name) DO UPDATE SET tier = $2, languages = $3, profile_match = $4, strategy = $5, sla_seconds = $6,
    overflow_group = $7, accept_seconds = $8
RETURNING id`, g.Name, g.Tier, g.Languages, match, g.Strategy, g.SLASeconds, overflow, g.AcceptSeconds).Scan(&g.ID)
		if err != nil {
			return kefu.E(op, kefu.Unavailable, err)
		}
		if overflow != nil && *overflow == g.ID {
			return kefu.Errorf(op, kefu.Invalid, "a group cannot overflow into itself")
		}
		if g.Members == nil {
			return nil
		}
		if _, err := tx.Exec(ctx, "DELETE FROM handoff_member WHERE group_id = $1", g.ID); err != nil {
			return kefu.E(op, kefu.Unavailable, err)
		}
		_, err = tx.Exec(ctx, `INSERT INTO handoff_member (group_id, agent_id) SELECT $1, unnest($2::bigint[])`, g.ID, g.Members)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23503" {
			return kefu.Errorf(op, kefu.Invalid, "a member is not an agent")
		}
		if err != nil {
			return kefu.E(op, kefu.Unavailable, err)
		}
		return nil
	})
	if err != nil {
		return Group{}, err
	}
	return g, nil
}

// Groups lists the skill groups with their members.
func (d *Desk) Groups(ctx context.Context) ([]Group, error) {
	rows, err := d.pool.Query(ctx, `
SELECT g.id, g.name, g.tier, g.languages, g.profile_match, g.strategy, g.sla_seconds, coalesce(o.name, ''), g.accept_seconds,
       coalesce((SELECT array_agg(agent_id ORDER BY agent_id) FROM handoff_member m WHERE m.group_id = g.id), '{}')
FROM handoff_group g LEFT JOIN handoff_group o ON o.id = g.overflow_group ORDER BY g.tier, g.name`)
	if err != nil {
		return nil, kefu.E("handoff.Groups", kefu.Unavailable, err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Group, error) {
		var g Group
		var match []byte
		err := row.Scan(&g.ID, &g.Name, &g.Tier, &g.Languages, &match, &g.Strategy, &g.SLASeconds, &g.Overflow, &g.AcceptSeconds, &g.Members)
		if err == nil {
			err = json.Unmarshal(match, &g.ProfileMatch)
		}
		return g, err
	})
}

// AgentGroups are the ids of the groups an agent is a member of.
func (d *Desk) AgentGroups(ctx context.Context, agentID int64) ([]int64, error) {
	rows, err := d.pool.Query(ctx, "SELECT group_id FROM handoff_member WHERE agent_id = $1 ORDER BY group_id", agentID)
	if err != nil {
		return nil, kefu.E("handoff.AgentGroups", kefu.Unavailable, err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

// Note is an internal note on a conversation; customers never see notes.
type Note struct {
	ID        int64     `json:"id"`
	SessionID int64     `json:"session_id"`
	AgentID   int64     `json:"agent_id"`
	AgentName string    `json:"agent_name"`
	Body      string    `json:"text"`
	CreatedAt time.Time `json:"created_at"`
}

// AddNote adds a note; the caller has checked that the agent may see the conversation.
func (d *Desk) AddNote(ctx context.Context, agentID, sessionID int64, body string) (Note, error) {
	const op = "handoff.AddNote"
	body = strings.TrimSpace(body)
	if body == "" || len(body) > 4000 || !utf8.ValidString(body) {
		return Note{}, kefu.Errorf(op, kefu.Invalid, "a note is 1–4000 bytes of text")
	}
	n := Note{SessionID: sessionID, AgentID: agentID, Body: body}
	err := d.pool.QueryRow(ctx, `
INSERT INTO handoff_note (session_id, agent_id, body, created_at) VALUES ($1, $2, $3, $4)
RETURNING id, created_at, (SELECT name FROM handoff_agent WHERE id = $2)`, sessionID, agentID, body, d.Now()).Scan(&n.ID, &n.CreatedAt, &n.AgentName)
	if err != nil {
		return Note{}, kefu.E(op, kefu.Unavailable, err)
	}
	return n, nil
}

// Notes are a conversation's notes, oldest first.
func (d *Desk) Notes(ctx context.Context, sessionID int64) ([]Note, error) {
	rows, err := d.pool.Query(ctx, `
SELECT n.id, n.session_id, n.agent_id, a.name, n.body, n.created_at
FROM handoff_note n JOIN handoff_agent a ON a.id = n.agent_id WHERE n.session_id = $1 ORDER BY n.id`, sessionID)
	if err != nil {
		return nil, kefu.E("handoff.Notes", kefu.Unavailable, err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Note, error) {
		var n Note
		err := row.Scan(&n.ID, &n.SessionID, &n.AgentID, &n.AgentName, &n.Body, &n.CreatedAt)
		return n, err
	})
}

// Canned is a canned reply, inserted by typing /shortcut in the console.
type Canned struct {
	ID       int64  `json:"id"`
	Shortcut string `json:"shortcut"`
	Language string `json:"language"`
	Title    string `json:"title"`
	Body     string `json:"text"`
}

var shortcut = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)

// SaveCanned creates or replaces the canned reply of a shortcut and language.
func (d *Desk) SaveCanned(ctx context.Context, c Canned) (Canned, error) {
	const op = "handoff.SaveCanned"
	c.Shortcut = strings.TrimPrefix(strings.ToLower(strings.TrimSpace(c.Shortcut)), "/")
	if !shortcut.MatchString(c.Shortcut) {
		return Canned{}, kefu.Errorf(op, kefu.Invalid, "a shortcut is 1–32 of a–z, 0–9, '_' and '-'")
	}
	if strings.TrimSpace(c.Body) == "" || len(c.Body) > 4000 {
		return Canned{}, kefu.Errorf(op, kefu.Invalid, "a canned reply is 1–4000 bytes")
	}
	if c.Title == "" {
		c.Title = c.Shortcut
	}
	err := d.pool.QueryRow(ctx, `
INSERT INTO handoff_canned (shortcut, language, title, body) VALUES ($1, $2, $3, $4)
ON CONFLICT (shortcut, language) DO UPDATE SET title = $3, body = $4 RETURNING id`,
		c.Shortcut, c.Language, c.Title, c.Body).Scan(&c.ID)
	if err != nil {
		return Canned{}, kefu.E(op, kefu.Unavailable, err)
	}
	return c, nil
}

// CannedReplies lists the canned replies, by shortcut.
func (d *Desk) CannedReplies(ctx context.Context) ([]Canned, error) {
	rows, err := d.pool.Query(ctx, "SELECT id, shortcut, language, title, body FROM handoff_canned ORDER BY shortcut, language")
	if err != nil {
		return nil, kefu.E("handoff.CannedReplies", kefu.Unavailable, err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Canned])
}

// DeleteCanned removes a canned reply.
func (d *Desk) DeleteCanned(ctx context.Context, id int64) error {
	tag, err := d.pool.Exec(ctx, "DELETE FROM handoff_canned WHERE id = $1", id)
	if err != nil {
		return kefu.E("handoff.DeleteCanned", kefu.Unavailable, err)
	}
	if tag.RowsAffected() == 0 {
		return kefu.Errorf("handoff.DeleteCanned", kefu.NotFound, "no canned reply %d", id)
	}
	return nil
}

// Ticket is a message left when no agent was online.
type Ticket struct {
	ID        int64     `json:"id"`
	SessionID int64     `json:"session_id"`
	Name      string    `json:"name"`
	Email     string    `json:"email"`
	Body      string    `json:"text"`
	Language  string    `json:"language"`
	State     string    `json:"state"`
	CreatedAt time.Time `json:"created_at"`
}

var email = regexp.MustCompile(`^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}$`)

// LeaveMessage stores an offline ticket.
func (d *Desk) LeaveMessage(ctx context.Context, t Ticket) (Ticket, error) {
	const op = "handoff.LeaveMessage"
	t.Body, t.Email, t.Name = strings.TrimSpace(t.Body), strings.TrimSpace(t.Email), strings.TrimSpace(t.Name)
	if t.Body == "" || len(t.Body) > 8000 || !utf8.ValidString(t.Body) {
		return Ticket{}, kefu.Errorf(op, kefu.Invalid, "the message is 1–8000 bytes of text")
	}
	if t.Email != "" && !email.MatchString(t.Email) {
		return Ticket{}, kefu.Errorf(op, kefu.Invalid, "%q is not an e-mail address", t.Email)
	}
	if len(t.Name) > 200 {
		return Ticket{}, kefu.Errorf(op, kefu.Invalid, "a name is at most 200 bytes")
	}
	t.State = "open"
	err := d.pool.QueryRow(ctx, `
INSERT INTO handoff_ticket (session_id, name, email, body, language, created_at) VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id, created_at`, t.SessionID, t.Name, t.Email, t.Body, t.Language, d.Now()).Scan(&t.ID, &t.CreatedAt)
	if err != nil {
		return Ticket{}, kefu.E(op, kefu.Unavailable, err)
	}
	return t, nil
}

// Tickets lists offline tickets in a state ("open", "closed"; "" for all), newest first.
func (d *Desk) Tickets(ctx context.Context, state string, limit int) ([]Ticket, error) {
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	rows, err := d.pool.Query(ctx, `
SELECT id, session_id, name, email, body, language, state, created_at FROM handoff_ticket
WHERE $1 = '' OR state = $1 ORDER BY id DESC LIMIT $2`, state, limit)
	if err != nil {
		return nil, kefu.E("handoff.Tickets", kefu.Unavailable, err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Ticket])
}

// CloseTicket marks a ticket handled.
func (d *Desk) CloseTicket(ctx context.Context, id int64) error {
	tag, err := d.pool.Exec(ctx, "UPDATE handoff_ticket SET state = 'closed' WHERE id = $1", id)
	if err != nil {
		return kefu.E("handoff.CloseTicket", kefu.Unavailable, err)
	}
	if tag.RowsAffected() == 0 {
		return kefu.Errorf("handoff.CloseTicket", kefu.NotFound, "no ticket %d", id)
	}
	return nil
}

// RateService records the customer's CSAT for the last conversation a person closed in the
// session: once, 1–5, with an optional comment.
func (d *Desk) RateService(ctx context.Context, sessionID int64, score int, comment string) error {
	const op = "handoff.RateService"
	if score < 1 || score > 5 {
		return kefu.Errorf(op, kefu.Invalid, "a rating is 1 to 5")
	}
	if len(comment) > 2000 || !utf8.ValidString(comment) {
		return kefu.Errorf(op, kefu.Invalid, "a comment is at most 2000 bytes of text")
	}
	var id int64
	var rated bool
	err := d.pool.QueryRow(ctx, `
SELECT id, csat IS NOT NULL FROM handoff_request
WHERE session_id = $1 AND state = 'closed' AND agent_id IS NOT NULL ORDER BY id DESC LIMIT 1`, sessionID).Scan(&id, &rated)
	if errors.Is(err, pgx.ErrNoRows) {
		return kefu.Errorf(op, kefu.NotFound, "no conversation with a person to rate in this session")
	}
	if err != nil {
		return kefu.E(op, kefu.Unavailable, err)
	}
	if rated {
		return kefu.Errorf(op, kefu.Conflict, "this conversation is already rated")
	}
	tag, err := d.pool.Exec(ctx, `
UPDATE handoff_request SET csat = $2, csat_comment = $3, csat_at = $4 WHERE id = $1 AND csat IS NULL`,
		id, score, strings.TrimSpace(comment), d.Now())
	if err != nil {
		return kefu.E(op, kefu.Unavailable, err)
	}
	if tag.RowsAffected() == 0 {
		return kefu.Errorf(op, kefu.Conflict, "this conversation is already rated")
	}
	return nil
}
