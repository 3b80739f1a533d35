package dialog

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kefu-dev/kefu"
	"github.com/kefu-dev/kefu/handoff"
	"github.com/kefu-dev/kefu/internal/token"
	"github.com/kefu-dev/kefu/nlu"
	"github.com/kefu-dev/kefu/retrieval"
)

// Understander is what a turn needs from nlu.
type Understander interface {
	Understand(ctx context.Context, text string) (nlu.Result, error)
}

// Answerer is what a turn needs from retrieval: answers before the session's lock, and
// inside its transaction.
type Answerer interface {
	Answer(ctx context.Context, question, lang string) (retrieval.Answer, error)
	AnswerTx(ctx context.Context, tx pgx.Tx, question, lang string) (retrieval.Answer, error)
}

// Escalator is what a turn needs from handoff: a queue it writes to inside the turn's
// transaction.
type Escalator interface {
	Enqueue(ctx context.Context, tx pgx.Tx, r handoff.Request) (bool, error)
	Close(ctx context.Context, tx pgx.Tx, sessionID int64, disposition string) (bool, error)
	Abandon(ctx context.Context, tx pgx.Tx, sessionID int64) (bool, error)
	// Current is the session's open request, if any (read outside any transaction).
	Current(ctx context.Context, sessionID int64) (handoff.Assignment, bool, error)
	// Hold locks the session's open request: taken before the session's own lock by everything
	// that changes both, as the router does, so that the two never wait on each other.
	Hold(ctx context.Context, tx pgx.Tx, sessionID int64) error
	Responded(ctx context.Context, tx pgx.Tx, agentID, sessionID int64) error
}

// Config tunes the engine.
type Config struct {
	// EscalateAfter is the number of turns in a row the bot may fail to answer before it
	// brings in a person (default 2; negative: never, the bot keeps offering a person).
	EscalateAfter int
	// MaxMessageBytes bounds a message (default 4000).
	MaxMessageBytes int
	// MinIntentConfidence is the confidence an intent needs to act on it (default 0.5).
	MinIntentConfidence float64
	// OutOfScopeAnswerScore is the knowledge answer's confidence that still answers a message
	// nlu found out of scope (default 0.85).
	OutOfScopeAnswerScore float64
	// ClarifyMargin: when the top two intents are closer than this, the bot asks which one
	// was meant (default 0.2; negative turns it off).
	ClarifyMargin float64
	// ReminderAfter is the silence after which a customer in the middle of a task is asked
	// whether they are still there (default 3m); CloseAfter closes an idle conversation
	// (default 15m); ResumeAfter is the absence after which a returning customer is reminded
	// of the open task (default 1m).
	ReminderAfter, CloseAfter, ResumeAfter time.Duration
	// AbandonAfter is how long a waiting customer may be gone (no message, no open
	// connection: Present) before Sweep takes them out of the queue as abandoned (default 2m;
	// negative: never).
	AbandonAfter time.Duration
	// Flows are the tasks the bot can do; without them it answers from knowledge only.
	Flows []*Flow
	// Webhooks calls the services flows name (default: an unsigned client).
	Webhooks *WebhookClient
	// Vars are the ${NAME}s of webhook URLs (KEFU_URL: the server's own address).
	Vars map[string]string
	// Now is the clock (default time.Now); conversation tests move it.
	Now func() time.Time
	// Generator, when set, words knowledge answers with an LLM from the passages found,
	// before the session is locked (generate.go); without it, or when it fails or finds no
	// answer in them, the bot gives the entry's own text.
	Generator Generator
	// GenerateTimeout bounds one LLM answer (default 20s).
	GenerateTimeout time.Duration
	// Usage, when set, is told of every question that went to the knowledge base and what
	// answered it (nothing, for a gap); it must not block.
	Usage func(retrieval.Usage)
	// Related, when set, suggests questions to show after a knowledge answer; it must not
	// block or touch the database (the turn holds a transaction).
	Related func(key, lang string) []string
	// Observe, when set, is told how long each stage of a turn took: "nlu" (intent and
	// language), "retrieval" (a knowledge search), "generate" (an LLM's answer) and "turn"
	// (a whole turn that succeeded: the customer's message and the bot's replies stored). It
	// must not block; api.Metrics.Observe records them for Prometheus.
	Observe func(stage string, d time.Duration)

	// The escalation policy beyond EscalateAfter (policy.go). A customer who asks for a
	// person always gets one; every other rule can be turned off.
	//
	// AngerScore: a message whose sentiment (ScoreSentiment) is at or below -AngerScore
	// brings in a person at once (default DefaultAngerScore; negative: never).
	// NegativeScore and NegativeTurns: so do NegativeTurns messages in a row at or below
	// -NegativeScore (defaults DefaultNegativeScore and 2; NegativeTurns negative: never).
	AngerScore, NegativeScore float64
	NegativeTurns             int
	// VIPEscalateAfter replaces EscalateAfter for a verified VIP (handoff.Profile.VIP) when it
	// is lower (default 1: the first turn the bot cannot answer; negative: as anyone else).
	VIPEscalateAfter int
	// VIPDirect: a verified VIP skips the bot: every message they write while the bot has the
	// conversation goes to a person (reason vip). Off by default.
	VIPDirect bool
	// VIPPriority is the queue priority of a verified VIP's request (default 10; others 0).
	VIPPriority int
	// IdentitySecret is the key the embedding site signs customer profiles with
	// (VerifyProfile); without it no profile is verified, so nobody is a VIP.
	IdentitySecret []byte
}

// Defaults of the sentiment rules.
const (
	DefaultAngerScore    = 0.7
	DefaultNegativeScore = 0.3
)

func (c *Config) defaults() {
	if c.EscalateAfter == 0 {
		c.EscalateAfter = 2
	}
	if c.AngerScore == 0 {
		c.AngerScore = DefaultAngerScore
	}
	if c.NegativeScore <= 0 {
		c.NegativeScore = DefaultNegativeScore
	}
	if c.NegativeTurns == 0 {
		c.NegativeTurns = 2
	}
	if c.VIPEscalateAfter == 0 {
		c.VIPEscalateAfter = 1
	}
	if c.VIPPriority == 0 {
		c.VIPPriority = 10
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 4000
	}
	if c.MinIntentConfidence <= 0 {
		c.MinIntentConfidence = 0.5
	}
	if c.OutOfScopeAnswerScore <= 0 {
		c.OutOfScopeAnswerScore = 0.85
	}
	if c.ClarifyMargin == 0 {
		c.ClarifyMargin = 0.2
	}
	if c.ReminderAfter <= 0 {
		c.ReminderAfter = 3 * time.Minute
	}
	if c.CloseAfter <= 0 {
		c.CloseAfter = 15 * time.Minute
	}
	if c.ResumeAfter <= 0 {
		c.ResumeAfter = time.Minute
	}
	if c.AbandonAfter == 0 {
		c.AbandonAfter = 2 * time.Minute
	}
	if c.Webhooks == nil {
		c.Webhooks = &WebhookClient{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.GenerateTimeout <= 0 {
		c.GenerateTimeout = 20 * time.Second
	}
}

// Engine runs conversations.
type Engine struct {
	pool     *pgxpool.Pool
	nlu      Understander
	kb       Answerer
	esc      Escalator
	cfg      Config
	log      *slog.Logger
	hooks    *WebhookClient
	flows    map[string]*Flow // by name
	byIntent map[string]*Flow // by trigger intent
	started  time.Time        // Sweep abandons nobody before AbandonAfter has passed since
}

// NewEngine returns an engine. Flows must come from LoadFlows.
func NewEngine(pool *pgxpool.Pool, u Understander, a Answerer, e Escalator, cfg Config, log *slog.Logger) *Engine {
	cfg.defaults()
	en := &Engine{pool: pool, nlu: u, kb: a, esc: e, cfg: cfg, log: log.With("component", "dialog"), hooks: cfg.Webhooks,
		flows: map[string]*Flow{}, byIntent: map[string]*Flow{}, started: cfg.Now()}
	for _, fl := range cfg.Flows {
		en.flows[fl.Name] = fl
		for _, in := range fl.Trigger.Intents {
			en.byIntent[in] = fl
		}
	}
	return en
}

// Flows returns the loaded flows by name.
func (e *Engine) Flows() map[string]*Flow { return e.flows }

// CreateSession starts a conversation and returns it with the customer's secret token, which
// Authorize checks on every connection. The bot greets first.
func (e *Engine) CreateSession(ctx context.Context, channel, language string) (Session, string, error) {
	return e.StartSession(ctx, NewSession{Channel: channel, Language: language})
}

// NewSession is what a conversation starts with.
type NewSession struct {
	Channel  string // "web" when empty
	Language string
	Profile  handoff.Profile // as VerifyProfile returned it
}

// StartSession is CreateSession with the customer's profile. It returns Invalid for a channel,
// a language or a profile field that is too long.
func (e *Engine) StartSession(ctx context.Context, n NewSession) (Session, string, error) {
	const op = "dialog.StartSession"
	channel, language := n.Channel, n.Language
	if channel == "" {
		channel = "web"
	}
	if len(channel) > 32 || len(language) > 16 {
		return Session{}, "", kefu.Errorf(op, kefu.Invalid, "channel or language is too long")
	}
	if err := checkProfile(op, n.Profile); err != nil {
		return Session{}, "", err
	}
	profile, err := profileJSON(n.Profile)
	if err != nil {
		return Session{}, "", kefu.E(op, kefu.Internal, err)
	}
	tok, hash := token.New()
	var s Session
	err = pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO dialog_session (token_hash, channel, language, profile) VALUES ($1, $2, $3, $4)
RETURNING id, state`, hash, channel, language, profile).Scan(&s.ID, &s.State)
		if err != nil {
			return kefu.E(op, kefu.Unavailable, err)
		}
		s.Channel, s.Language, s.Profile = channel, language, n.Profile
		_, err = addMessage(ctx, tx, &s, Message{Role: RoleBot, Body: text(language, "welcome"), Meta: Meta{Event: "welcome"}})
		if err != nil {
			return err
		}
		return saveSession(ctx, tx, s)
	})
	if err != nil {
		return Session{}, "", kefu.E(op, "", err)
	}
	e.log.InfoContext(ctx, "session created", "session_id", s.ID, "channel", channel, "verified_profile", s.Profile.Verified)
	return s, tok, nil
}

// Authorize returns the session when token is its customer's token. An unknown session and a
// wrong token are the same NotFound, so ids cannot be probed.
func (e *Engine) Authorize(ctx context.Context, sessionID int64, bearer string) (Session, error) {
	const op = "dialog.Authorize"
	var s Session
	err := scanSession(e.pool.QueryRow(ctx, `SELECT `+sessionColumns+` FROM dialog_session
WHERE id = $1 AND token_hash = $2`, sessionID, token.Hash(bearer)), &s)
	if errors.Is(err, pgx.ErrNoRows) {
		return Session{}, kefu.Errorf(op, kefu.NotFound, "unknown session or wrong token")
	}
	if err != nil {
		return Session{}, kefu.E(op, kefu.Unavailable, err)
	}
	return s, nil
}

// Get returns a session by id (for agents and the api; no token check).
func (e *Engine) Get(ctx context.Context, sessionID int64) (Session, error) {
	var s Session
	err := scanSession(e.pool.QueryRow(ctx, `SELECT `+sessionColumns+` FROM dialog_session WHERE id = $1`, sessionID), &s)
	if errors.Is(err, pgx.ErrNoRows) {
		return Session{}, kefu.Errorf("dialog.Get", kefu.NotFound, "no session %d", sessionID)
	}
	if err != nil {
		return Session{}, kefu.E("dialog.Get", kefu.Unavailable, err)
	}
	return s, nil
}

// Messages returns up to limit messages of a session with Seq > after, oldest first.
func (e *Engine) Messages(ctx context.Context, sessionID, after int64, limit int) ([]Message, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	rows, err := e.pool.Query(ctx, `SELECT `+messageColumns+` FROM dialog_message
WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, sessionID, after, limit)
	if err != nil {
		return nil, kefu.E("dialog.Messages", kefu.Unavailable, err)
	}
	return scanMessages(rows)
}

// Inbound is one message from a customer.
type Inbound struct {
	SessionID int64
	ClientID  string // the client's id for this message: a resend with the same id is not a duplicate
	Text      string
	// OnDelta, when set, receives the bot's answer while an LLM writes it, piece by piece,
	// before the turn commits. The turn's replies replace what it received: they may differ
	// (an answer the LLM could not give falls back to the knowledge base's own text).
	OnDelta func(delta string)
}

// TurnResult is what a turn produced, already committed.
type TurnResult struct {
	Session   Session   // after the turn
	Customer  Message   // the customer's message as stored
	Replies   []Message // the bot's replies (none while a person owns the session)
	Duplicate bool      // the message was a resend: nothing new was stored
	Escalated bool      // the turn put the session in the queue
}

func (e *Engine) validate(op, clientID, body string) (string, error) {
	body = strings.TrimSpace(body)
	switch {
	case !utf8.ValidString(body):
		return "", kefu.Errorf(op, kefu.Invalid, "the message is not valid UTF-8")
	case body == "":
		return "", kefu.Errorf(op, kefu.Invalid, "the message is empty")
	case len(body) > e.cfg.MaxMessageBytes:
		return "", kefu.Errorf(op, kefu.TooLarge, "the message is longer than %d bytes", e.cfg.MaxMessageBytes)
	case len(clientID) > 64:
		return "", kefu.Errorf(op, kefu.Invalid, "client_id is longer than 64 bytes")
	}
	return body, nil
}

// Turn runs one customer message. The message, the bot's replies and the new state commit
// together; a resend of a stored client id returns the stored message with Duplicate set.
func (e *Engine) Turn(ctx context.Context, in Inbound) (TurnResult, error) {
	const op = "dialog.Turn"
	t0 := time.Now()
	body, err := e.validate(op, in.ClientID, in.Text)
	if err != nil {
		return TurnResult{}, err
	}
	// Understanding and knowledge search are pure reads: they run before the session's lock,
	// for every message. While a person owns the conversation the bot stays silent, but the
	// intent and entities it read are stored with the message for the agent.
	plan, err := e.think(ctx, body)
	if err != nil {
		return TurnResult{}, kefu.E(op, "", err)
	}
	e.draft(ctx, in, body, plan) // an LLM's answer, streamed: still before the lock

	tx, err := e.pool.Begin(ctx)
	if err != nil {
		return TurnResult{}, kefu.E(op, kefu.Unavailable, err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after Commit
	s, dup, err := lockForTurn(ctx, tx, in.SessionID, in.ClientID)
	if err != nil {
		return TurnResult{}, kefu.E(op, "", err)
	}
	if dup != nil {
		return TurnResult{Session: s, Customer: *dup, Duplicate: true}, nil
	}
	res := TurnResult{}
	customer := Message{SessionID: s.ID, Role: RoleCustomer, ClientID: in.ClientID, Body: body, CreatedAt: e.cfg.Now()}
	if plan != nil {
		customer.Meta = plan.understood
	}
	s.LastSeq++ // the customer's message comes first; it is written once the turn knows its flow
	customer.Seq = s.LastSeq
	s.LastActive, s.Reminded = e.cfg.Now(), false
	if s.State == StateClosed && plan != nil { // a new conversation in the same session
		s.State, s.Dialog, s.LowConfidence = StateBot, State{Memory: s.Dialog.Memory}, 0
	}
	if s.State == StateBot && plan != nil {
		if plan.language != "" && (s.Language == "" || clearLanguage(body)) {
			s.Language = plan.language
		}
		plan.seq = customer.Seq
		if f := s.Dialog.Flow; f != nil {
			customer.Meta.Flow, customer.Meta.FlowVersion, customer.Meta.Step = f.Name, f.Version, f.Step
		}
		if err := e.act(ctx, tx, &s, plan, &res); err != nil {
			return TurnResult{}, kefu.E(op, "", err)
		}
		if customer.Meta.Flow == "" && len(res.Replies) > 0 {
			customer.Meta.Flow, customer.Meta.FlowVersion = res.Replies[0].Meta.Flow, res.Replies[0].Meta.FlowVersion
		}
	}
	res.Customer = customer
	if err := writeTurn(ctx, tx, s, append([]Message{customer}, res.Replies...)); err != nil {
		return TurnResult{}, kefu.E(op, "", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return TurnResult{}, kefu.E(op, kefu.Unavailable, err)
	}
	res.Session = s
	if e.cfg.Usage != nil && plan != nil {
		e.recordUsage(s.ID, plan, res.Replies)
	}
	e.observe("turn", t0)
	return res, nil
}

// observe tells Config.Observe how long stage took since t0 (wall time, not Config.Now).
func (e *Engine) observe(stage string, t0 time.Time) {
	if e.cfg.Observe != nil {
		e.cfg.Observe(stage, time.Since(t0))
	}
}

// recordUsage tells the usage sink what the knowledge base did for this turn's question: the
// entry that answered it, or a gap when the bot could not answer.
func (e *Engine) recordUsage(sessionID int64, p *plan, replies []Message) {
	for _, r := range replies {
		switch {
		case len(r.Meta.Sources) > 0:
			src := r.Meta.Sources[0]
			e.cfg.Usage(retrieval.Usage{SessionID: sessionID, Question: p.body, Language: p.language, Key: src.Key, Score: r.Meta.Score})
			return
		case strings.HasPrefix(r.Meta.Event, "fallback") || r.Meta.Reason == ReasonLowConfidence:
			e.cfg.Usage(retrieval.Usage{SessionID: sessionID, Question: p.body, Language: p.language, Score: p.answer.Score})
			return
		}
	}
}

// AgentReply stores a message from the agent who owns the session. A session the agent does
// not own is NotFound to them.
func (e *Engine) AgentReply(ctx context.Context, agentID, sessionID int64, clientID, body string) (Message, bool, error) {
	const op = "dialog.AgentReply"
	body, err := e.validate(op, clientID, body)
	if err != nil {
		return Message{}, false, err
	}
	var out Message
	var dup bool
	err = pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if err := e.esc.Hold(ctx, tx, sessionID); err != nil {
			return err
		}
		s, err := e.lockOwned(ctx, tx, op, agentID, sessionID)
		if err != nil {
			return err
		}
		if clientID != "" {
			if out, dup, err = findByClientID(ctx, tx, s.ID, RoleAgent, clientID); err != nil || dup {
				return err
			}
		}
		if out, err = addMessage(ctx, tx, &s, Message{Role: RoleAgent, AgentID: agentID, ClientID: clientID, Body: body}); err != nil {
			return err
		}
		if err := e.esc.Responded(ctx, tx, agentID, sessionID); err != nil {
			return err
		}
		return saveSession(ctx, tx, s)
	})
	if err != nil {
		return Message{}, false, kefu.E(op, "", err)
	}
	return out, dup, nil
}

// CloseByAgent ends the agent's part of a conversation: the session goes back to the bot and
// the customer is told. It returns the system message it wrote.
func (e *Engine) CloseByAgent(ctx context.Context, agentID, sessionID int64, disposition string) (Message, error) {
	const op = "dialog.CloseByAgent"
	if disposition == "" {
		disposition = "resolved"
	}
	var out Message
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if err := e.esc.Hold(ctx, tx, sessionID); err != nil {
			return err
		}
		s, err := e.lockOwned(ctx, tx, op, agentID, sessionID)
		if err != nil {
			return err
		}
		if _, err := e.esc.Close(ctx, tx, s.ID, disposition); err != nil {
			return err
		}
		s.State, s.AgentID, s.LowConfidence = StateBot, 0, 0
		// The customer is asked to rate the person's help (Meta.Survey: the widget shows it).
		out, err = addMessage(ctx, tx, &s, Message{Role: RoleSystem, Body: text(s.Language, "agent_closed"),
			Meta: Meta{Event: "agent_closed", Survey: true}})
		if err != nil {
			return err
		}
		return saveSession(ctx, tx, s)
	})
	if err != nil {
		return Message{}, kefu.E(op, "", err)
	}
	e.log.InfoContext(ctx, "conversation closed by agent", "session_id", sessionID, "agent_id", agentID)
	return out, nil
}

func (e *Engine) lockOwned(ctx context.Context, tx pgx.Tx, op string, agentID, sessionID int64) (Session, error) {
	s, err := lockSession(ctx, tx, sessionID)
	if err != nil {
		return Session{}, err
	}
	if s.State != StateAgent || s.AgentID != agentID {
		return Session{}, kefu.Errorf(op, kefu.NotFound, "session %d is not assigned to you", sessionID)
	}
	return s, nil
}

// Assigned is handoff's Owner hook: inside the routing transaction, the sessions pass to their
// agents and each customer is told, in one statement for the whole batch.
func (e *Engine) Assigned(ctx context.Context, tx pgx.Tx, as []handoff.Assignment) error {
	ids, agents, bodies := make([]int64, len(as)), make([]int64, len(as)), make([]string, len(as))
	for i, a := range as {
		ids[i], agents[i], bodies[i] = a.SessionID, a.AgentID, text(a.Language, "agent_joined")
	}
	meta, _ := json.Marshal(Meta{Event: "agent_joined"})
	return e.passSessions(ctx, tx, "dialog.Assigned", StateAgent, ids, agents, bodies, meta)
}

// Requeued is handoff's Owner hook for conversations that go back to waiting: an offer that
// lapsed, or a transfer to a group. The customer is told that they are waiting again.
func (e *Engine) Requeued(ctx context.Context, tx pgx.Tx, sessionIDs []int64) error {
	agents, bodies := make([]int64, len(sessionIDs)), make([]string, len(sessionIDs))
	meta, _ := json.Marshal(Meta{Event: "requeued"})
	return e.passSessions(ctx, tx, "dialog.Requeued", StateQueued, sessionIDs, agents, bodies, meta)
}

// A conversation that goes back to waiting starts a fresh AbandonAfter: its customer, who
// may have said nothing to the agent for a while, is not counted gone at once.
func (e *Engine) passSessions(ctx context.Context, tx pgx.Tx, op, state string, ids, agents []int64, bodies []string, meta []byte) error {
	const q = `
WITH v AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS v(id, agent, body)),
s AS (
    UPDATE dialog_session d SET state = $4, agent_id = nullif(v.agent, 0), last_seq = d.last_seq + 1, updated_at = now(),
        last_active_at = CASE WHEN $4 = 'queued' THEN greatest(d.last_active_at, $8) ELSE d.last_active_at END
    FROM v WHERE d.id = v.id
    RETURNING d.id, d.last_seq, d.language, v.body
)
INSERT INTO dialog_message (session_id, seq, role, body, meta)
SELECT s.id, s.last_seq, 'system', CASE WHEN s.body <> '' THEN s.body WHEN s.language LIKE 'zh%' THEN $6 ELSE $7 END, $5 FROM s`
	if _, err := tx.Exec(ctx, q, ids, agents, bodies, state, meta, text("zh", "requeued"), text("en", "requeued"), e.cfg.Now()); err != nil {
		return kefu.E(op, kefu.Unavailable, err)
	}
	return nil
}

// Abandon is the customer who stops waiting for a person: the request is recorded as
// abandoned and the bot takes the conversation back. It returns the system message it wrote
// (Meta.Group: the skill group the customer waited for). It returns Conflict when the
// conversation is not waiting.
func (e *Engine) Abandon(ctx context.Context, sessionID int64) (Message, error) {
	m, err := e.abandon(ctx, sessionID, time.Time{})
	if err != nil {
		return Message{}, err
	}
	return *m, nil
}

// abandon takes a waiting conversation out of the queue. With a non-zero goneBefore it is
// Sweep's: it does nothing (nil, nil) unless the customer, under the session's lock, is still
// waiting and has not been seen since goneBefore.
func (e *Engine) abandon(ctx context.Context, sessionID int64, goneBefore time.Time) (*Message, error) {
	const op = "dialog.Abandon"
	// The group is read first, outside the transaction: it is for the record (and the
	// abandonment metric), and an overflow in between changes nothing that matters.
	cur, _, err := e.esc.Current(ctx, sessionID)
	if err != nil {
		return nil, kefu.E(op, "", err)
	}
	var out *Message
	err = pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if err := e.esc.Hold(ctx, tx, sessionID); err != nil {
			return err
		}
		s, err := lockSession(ctx, tx, sessionID)
		if err != nil {
			return err
		}
		gone := !goneBefore.IsZero()
		if gone && (s.State != StateQueued || !s.LastActive.Before(goneBefore)) {
			return nil // back, served or gone already: nothing to do
		}
		if s.State != StateQueued {
			return kefu.Errorf(op, kefu.Conflict, "the conversation is not waiting for a person")
		}
		if _, err := e.esc.Abandon(ctx, tx, s.ID); err != nil {
			return err
		}
		s.State, s.AgentID, s.LowConfidence = StateBot, 0, 0
		key, reason := "abandoned", ReasonCustomerLeft
		if gone {
			key, reason = "abandoned_gone", ReasonCustomerGone
		}
		m, err := addMessage(ctx, tx, &s, Message{Role: RoleSystem, Body: text(s.Language, key),
			Meta: Meta{Event: "abandoned", Reason: reason, Group: cur.Group}})
		if err != nil {
			return err
		}
		out = &m
		return saveSession(ctx, tx, s)
	})
	if err != nil {
		return nil, kefu.E(op, "", err)
	}
	if out != nil {
		e.log.InfoContext(ctx, "customer left the queue", "session_id", sessionID, "reason", out.Meta.Reason)
	}
	return out, nil
}

// Why a customer stopped waiting (Meta.Reason of the "abandoned" message).
const (
	ReasonCustomerLeft = "customer_left" // they said so (Abandon)
	ReasonCustomerGone = "customer_gone" // they went away for longer than AbandonAfter (Sweep)
)

// LeaveMessage is the waiting customer who leaves a message instead (an offline ticket,
// which the caller stores first, so that the message is never lost): the request is closed
// with the disposition offline_ticket and the bot takes the conversation back. It returns
// the system message it wrote, or Conflict when the conversation is not waiting.
func (e *Engine) LeaveMessage(ctx context.Context, sessionID int64) (Message, error) {
	const op = "dialog.LeaveMessage"
	var out Message
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if err := e.esc.Hold(ctx, tx, sessionID); err != nil {
			return err
		}
		s, err := lockSession(ctx, tx, sessionID)
		if err != nil {
			return err
		}
		if s.State != StateQueued {
			return kefu.Errorf(op, kefu.Conflict, "the conversation is not waiting for a person")
		}
		if _, err := e.esc.Close(ctx, tx, s.ID, "offline_ticket"); err != nil {
			return err
		}
		s.State, s.AgentID, s.LowConfidence = StateBot, 0, 0
		s.LastActive, s.Reminded = e.cfg.Now(), false
		if out, err = addMessage(ctx, tx, &s, Message{Role: RoleSystem, Body: text(s.Language, "offline_ticket"),
			Meta: Meta{Event: "offline_ticket"}}); err != nil {
			return err
		}
		return saveSession(ctx, tx, s)
	})
	if err != nil {
		return Message{}, kefu.E(op, "", err)
	}
	return out, nil
}

// Rated thanks the customer for rating a person's help (handoff.Desk.RateService, which the
// caller has done): the message (Meta.Event "rated") stays in the transcript, so a client
// that reloads it knows not to ask again.
func (e *Engine) Rated(ctx context.Context, sessionID int64) (Message, error) {
	const op = "dialog.Rated"
	var out Message
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		s, err := lockSession(ctx, tx, sessionID)
		if err != nil {
			return err
		}
		if out, err = addMessage(ctx, tx, &s, Message{Role: RoleSystem, Body: text(s.Language, "rated"),
			Meta: Meta{Event: "rated"}}); err != nil {
			return err
		}
		return saveSession(ctx, tx, s)
	})
	if err != nil {
		return Message{}, kefu.E(op, "", err)
	}
	return out, nil
}

// Present records that the customer of a waiting conversation is still there (a connection
// of theirs is open), so that Sweep does not count them gone. It does nothing to a
// conversation that is not waiting. Call it well within AbandonAfter: on connecting, and
// every few seconds while connected.
func (e *Engine) Present(ctx context.Context, sessionID int64) error {
	_, err := e.pool.Exec(ctx, `UPDATE dialog_session SET last_active_at = greatest(last_active_at, $2)
WHERE id = $1 AND state = 'queued'`, sessionID, e.cfg.Now())
	if err != nil {
		return kefu.E("dialog.Present", kefu.Unavailable, err)
	}
	return nil
}

// clearLanguage says whether a message shows its language well enough to switch the
// conversation to it: any CJK, Hangul or other non-Latin letters do, and so do two Latin words
// or one long one. "SO20261127001", "ok" or "2" in a Chinese conversation keep it Chinese.
func clearLanguage(body string) bool {
	words, long := 0, false
	for _, w := range strings.FieldsFunc(body, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		letters := true
		for _, r := range w {
			if unicode.IsLetter(r) && r > unicode.MaxLatin1 && !unicode.Is(unicode.Latin, r) {
				return true
			}
			letters = letters && unicode.IsLetter(r)
		}
		if letters {
			words++
			long = long || utf8.RuneCountInString(w) >= 5
		}
	}
	return words >= 2 || long
}
