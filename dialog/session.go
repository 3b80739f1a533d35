package dialog

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kefu-dev/kefu"
	"github.com/kefu-dev/kefu/handoff"
	"github.com/kefu-dev/kefu/internal/migrate"
	"github.com/kefu-dev/kefu/nlu"
	"github.com/kefu-dev/kefu/retrieval"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations are the tables dialog owns.
func Migrations() migrate.Source {
	sub, _ := fs.Sub(migrations, "migrations")
	return migrate.Source{Name: "dialog", FS: sub}
}

// Session states.
const (
	StateBot    = "bot"    // the bot answers
	StateQueued = "queued" // waiting for a person; the bot is silent
	StateAgent  = "agent"  // a person owns the conversation; the bot is silent
	StateClosed = "closed" // ended for inactivity; the customer's next message opens it again
)

// Message roles.
const (
	RoleCustomer = "customer"
	RoleBot      = "bot"
	RoleAgent    = "agent"
	RoleSystem   = "system"
)

// Session is one customer's conversation.
type Session struct {
	ID            int64  `json:"id"`
	Channel       string `json:"channel"`
	Language      string `json:"language"`
	State         string `json:"state"`
	AgentID       int64  `json:"agent_id,omitempty"`
	LowConfidence int    `json:"-"`
	LastSeq       int64  `json:"last_seq"`
	// Dialog is where the bot is: the flow in progress and its slots, what it remembers.
	Dialog     State     `json:"dialog"`
	LastActive time.Time `json:"-"` // the customer's last message
	Reminded   bool      `json:"-"` // the inactivity reminder went out since then
	// Profile is who the customer is, as the embedding site told (SetProfile); Verified only
	// when the site signed it.
	Profile handoff.Profile `json:"profile"`
}

// sessionColumns are read by every query that loads a Session, in scanSession's order.
const sessionColumns = `id, channel, language, state, coalesce(agent_id, 0), low_confidence, last_seq, dialog,
last_active_at, reminded, coalesce(profile, '{}')`

func scanSession(row pgx.Row, s *Session) error {
	var dialog, profile []byte
	var active *time.Time
	if err := row.Scan(&s.ID, &s.Channel, &s.Language, &s.State, &s.AgentID, &s.LowConfidence, &s.LastSeq,
		&dialog, &active, &s.Reminded, &profile); err != nil {
		return err
	}
	if active != nil {
		s.LastActive = *active
	}
	if err := json.Unmarshal(dialog, &s.Dialog); err != nil {
		return kefu.E("dialog.scanSession", kefu.Internal, err)
	}
	if err := json.Unmarshal(profile, &s.Profile); err != nil {
		return kefu.E("dialog.scanSession", kefu.Internal, err)
	}
	return nil
}

// Meta is what the bot knew when it wrote or read a message: kept with the message so a
// conversation can be explained, and shown to the agent who takes over.
type Meta struct {
	Intent       string             `json:"intent,omitempty"`
	Confidence   float64            `json:"confidence,omitempty"`
	OutOfScope   bool               `json:"out_of_scope,omitempty"`
	Language     string             `json:"language,omitempty"`
	ModelVersion string             `json:"model_version,omitempty"`
	Entities     []nlu.Entity       `json:"entities,omitempty"`
	Sources      []retrieval.Source `json:"sources,omitempty"`
	Score        float64            `json:"score,omitempty"`
	QuickReplies []string           `json:"quick_replies,omitempty"`
	Related      []string           `json:"related,omitempty"` // questions to ask next, after an answer
	Reason       string             `json:"reason,omitempty"`  // why the bot escalated
	Event        string             `json:"event,omitempty"`   // "agent_joined", "escalated", "clarify", "digression", …
	Survey       bool               `json:"survey,omitempty"`  // ask the customer to rate the person's help (CSAT)
	Group        string             `json:"group,omitempty"`   // the skill group the customer waited for (event abandoned)
	Cards        []CardOut          `json:"cards,omitempty"`
	// The flow that wrote a reply, its version and step, and its slots after the turn.
	Flow        string            `json:"flow,omitempty"`
	FlowVersion int               `json:"flow_version,omitempty"`
	Step        string            `json:"step,omitempty"`
	Slots       map[string]string `json:"slots,omitempty"`
	// LLM is how a language model worded the answer: the model, the prompt and the passages.
	LLM *retrieval.GenerationRecord `json:"llm,omitempty"`
	// Sentiment is how a customer's message sounded (ScoreSentiment), from -1 furious to 1
	// delighted; 0 (no cue) is left out. The agent who takes over sees it.
	Sentiment float64 `json:"sentiment,omitempty"`
}

// CardOut is a card as the customer sees it, in their language.
type CardOut struct {
	Title string `json:"title"`
	Body  string `json:"body"`
	Image string `json:"image,omitempty"`
	URL   string `json:"url,omitempty"`
}

// Message is one message in a session, numbered by Seq from 1.
type Message struct {
	SessionID int64     `json:"session_id"`
	Seq       int64     `json:"seq"`
	Role      string    `json:"role"`
	AgentID   int64     `json:"agent_id,omitempty"`
	ClientID  string    `json:"client_id,omitempty"`
	Body      string    `json:"text"`
	Meta      Meta      `json:"meta"`
	CreatedAt time.Time `json:"created_at"`
}

func lockSession(ctx context.Context, tx pgx.Tx, id int64) (Session, error) {
	var s Session
	err := scanSession(tx.QueryRow(ctx, `SELECT `+sessionColumns+` FROM dialog_session WHERE id = $1 FOR UPDATE`, id), &s)
	if errors.Is(err, pgx.ErrNoRows) {
		return Session{}, kefu.Errorf("dialog.lockSession", kefu.NotFound, "no session %d", id)
	}
	if err != nil {
		return Session{}, kefu.E("dialog.lockSession", kefu.Unavailable, err)
	}
	return s, nil
}

func saveQuery(s Session) (string, []any, error) {
	const q = `
UPDATE dialog_session
SET language = $2, state = $3, agent_id = nullif($4, 0), low_confidence = $5, last_seq = $6, dialog = $7,
    last_active_at = $8, reminded = $9, updated_at = now()
WHERE id = $1`
	dialog, err := json.Marshal(s.Dialog)
	if err != nil {
		return "", nil, kefu.E("dialog.saveSession", kefu.Internal, err)
	}
	var active *time.Time
	if !s.LastActive.IsZero() {
		active = &s.LastActive
	}
	return q, []any{s.ID, s.Language, s.State, s.AgentID, s.LowConfidence, s.LastSeq, dialog, active, s.Reminded}, nil
}

func saveSession(ctx context.Context, tx pgx.Tx, s Session) error {
	q, args, err := saveQuery(s)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, q, args...); err != nil {
		return kefu.E("dialog.saveSession", kefu.Unavailable, err)
	}
	return nil
}

// writeTurn stores a turn's messages, already numbered, and the session after it, in one
// round trip.
func writeTurn(ctx context.Context, tx pgx.Tx, s Session, msgs []Message) error {
	b := &pgx.Batch{}
	for _, m := range msgs {
		meta, err := json.Marshal(m.Meta)
		if err != nil {
			return kefu.E("dialog.writeTurn", kefu.Internal, err)
		}
		b.Queue(`
INSERT INTO dialog_message (session_id, seq, role, agent_id, client_id, body, meta, created_at)
VALUES ($1, $2, $3, nullif($4, 0), nullif($5, ''), $6, $7, $8)`, m.SessionID, m.Seq, m.Role, m.AgentID, m.ClientID, m.Body, meta, m.CreatedAt)
	}
	q, args, err := saveQuery(s)
	if err != nil {
		return err
	}
	b.Queue(q, args...)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return kefu.E("dialog.writeTurn", kefu.Unavailable, err)
	}
	return nil
}

// lockForTurn locks the session and, for a message with a client id, looks for an earlier
// copy of it, in one round trip.
func lockForTurn(ctx context.Context, tx pgx.Tx, id int64, clientID string) (Session, *Message, error) {
	b := &pgx.Batch{}
	var s Session
	var lockErr error
	b.Queue(`SELECT `+sessionColumns+` FROM dialog_session WHERE id = $1 FOR UPDATE`, id).QueryRow(func(row pgx.Row) error {
		lockErr = scanSession(row, &s)
		return nil
	})
	var dup *Message
	var dupErr error
	if clientID != "" {
		b.Queue(`SELECT `+messageColumns+` FROM dialog_message WHERE session_id = $1 AND role = 'customer' AND client_id = $2`,
			id, clientID).Query(func(rows pgx.Rows) error {
			ms, err := scanMessages(rows)
			if len(ms) > 0 {
				dup = &ms[0]
			}
			dupErr = err
			return nil
		})
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return Session{}, nil, kefu.E("dialog.lockForTurn", kefu.Unavailable, err)
	}
	if errors.Is(lockErr, pgx.ErrNoRows) {
		return Session{}, nil, kefu.Errorf("dialog.lockForTurn", kefu.NotFound, "no session %d", id)
	}
	if lockErr != nil {
		return Session{}, nil, kefu.E("dialog.lockForTurn", kefu.Unavailable, lockErr)
	}
	return s, dup, dupErr
}

// addMessage appends m to the locked session s, numbering it.
func addMessage(ctx context.Context, tx pgx.Tx, s *Session, m Message) (Message, error) {
	s.LastSeq++
	m.SessionID, m.Seq = s.ID, s.LastSeq
	return insertMessage(ctx, tx, m)
}

// insertMessage stores m with the number it already has.
func insertMessage(ctx context.Context, tx pgx.Tx, m Message) (Message, error) {
	meta, err := json.Marshal(m.Meta)
	if err != nil {
		return Message{}, kefu.E("dialog.addMessage", kefu.Internal, err)
	}
	const q = `
INSERT INTO dialog_message (session_id, seq, role, agent_id, client_id, body, meta)
VALUES ($1, $2, $3, nullif($4, 0), nullif($5, ''), $6, $7)
RETURNING created_at`
	if err := tx.QueryRow(ctx, q, m.SessionID, m.Seq, m.Role, m.AgentID, m.ClientID, m.Body, meta).Scan(&m.CreatedAt); err != nil {
		return Message{}, kefu.E("dialog.addMessage", kefu.Unavailable, err)
	}
	return m, nil
}

const messageColumns = `session_id, seq, role, coalesce(agent_id, 0), coalesce(client_id, ''), body, meta, created_at`

func scanMessages(rows pgx.Rows) ([]Message, error) {
	defer rows.Close()
	var out []Message
	for rows.Next() {
		var m Message
		var meta []byte
		if err := rows.Scan(&m.SessionID, &m.Seq, &m.Role, &m.AgentID, &m.ClientID, &m.Body, &meta, &m.CreatedAt); err != nil {
			return nil, kefu.E("dialog.scanMessages", kefu.Unavailable, err)
		}
		if err := json.Unmarshal(meta, &m.Meta); err != nil {
			return nil, kefu.E("dialog.scanMessages", kefu.Internal, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, kefu.E("dialog.scanMessages", kefu.Unavailable, err)
	}
	return out, nil
}

// findByClientID returns the message a resend refers to.
func findByClientID(ctx context.Context, tx pgx.Tx, sessionID int64, role, clientID string) (Message, bool, error) {
	rows, err := tx.Query(ctx, `SELECT `+messageColumns+` FROM dialog_message WHERE session_id = $1 AND role = $2 AND client_id = $3`,
		sessionID, role, clientID)
	if err != nil {
		return Message{}, false, kefu.E("dialog.findByClientID", kefu.Unavailable, err)
	}
	ms, err := scanMessages(rows)
	if err != nil || len(ms) == 0 {
		return Message{}, false, err
	}
	return ms[0], true, nil
}
