package handoff

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/argon2"

	"github.com/kefu-dev/kefu"
	"github.com/kefu-dev/kefu/internal/migrate"
	"github.com/kefu-dev/kefu/internal/token"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations are the tables handoff owns.
func Migrations() migrate.Source {
	sub, _ := fs.Sub(migrations, "migrations")
	return migrate.Source{Name: "handoff", FS: sub}
}

// Agent is a person who answers escalated conversations.
type Agent struct {
	ID        int64    `json:"id"`
	Email     string   `json:"email"`
	Name      string   `json:"name"`
	Languages []string `json:"languages"`
	MaxChats  int      `json:"max_chats"`
	Status    string   `json:"status"`
	Roles     []string `json:"roles"` // RoleAgent when empty on Create
	// ChannelMax caps open chats per channel ({"web": 3}) within MaxChats.
	ChannelMax map[string]int `json:"channel_max,omitempty"`
}

// Roles an account may hold.
const (
	RoleAdmin      = "admin"      // everything, including accounts
	RoleSupervisor = "supervisor" // the queue and the metrics
	RoleAgent      = "agent"      // receives escalated conversations
	RoleEditor     = "editor"     // curates the knowledge base
)

// HasRole reports whether the account holds one of roles; an admin holds them all.
func (ag Agent) HasRole(roles ...string) bool {
	for _, r := range ag.Roles {
		if r == RoleAdmin || slices.Contains(roles, r) {
			return true
		}
	}
	return false
}

// Presence values.
const (
	Online  = "online"
	Away    = "away"
	Offline = "offline"
)

// TokenTTL is how long an agent's login lasts.
const TokenTTL = 12 * time.Hour

// Agents manages agents and their logins.
type Agents struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	now  func() time.Time
}

// NewAgents returns the agent directory.
func NewAgents(pool *pgxpool.Pool, log *slog.Logger) *Agents {
	return &Agents{pool: pool, log: log.With("component", "handoff"), now: time.Now}
}

// Create adds an agent. It returns Conflict when the e-mail is taken.
func (a *Agents) Create(ctx context.Context, ag Agent, password string) (Agent, error) {
	const op = "handoff.CreateAgent"
	ag.Email = strings.ToLower(strings.TrimSpace(ag.Email))
	if ag.Email == "" || len(password) < 8 {
		return Agent{}, kefu.Errorf(op, kefu.Invalid, "an agent needs an e-mail and a password of at least 8 characters")
	}
	if ag.MaxChats <= 0 {
		ag.MaxChats = 5
	}
	if ag.Languages == nil {
		ag.Languages = []string{}
	}
	if len(ag.Roles) == 0 {
		ag.Roles = []string{RoleAgent}
	}
	for _, r := range ag.Roles {
		if r != RoleAdmin && r != RoleSupervisor && r != RoleAgent && r != RoleEditor {
			return Agent{}, kefu.Errorf(op, kefu.Invalid, "unknown role %q (admin, supervisor, agent, editor)", r)
		}
	}
	hash, err := hashPassword(password)
	if err != nil {
		return Agent{}, kefu.E(op, kefu.Internal, err)
	}
	const q = `
INSERT INTO handoff_agent (email, name, password_hash, languages, max_chats, roles)
VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, status`
	err = a.pool.QueryRow(ctx, q, ag.Email, ag.Name, hash, ag.Languages, ag.MaxChats, ag.Roles).Scan(&ag.ID, &ag.Status)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return Agent{}, kefu.Errorf(op, kefu.Conflict, "an agent with this e-mail exists")
	}
	if err != nil {
		return Agent{}, kefu.E(op, kefu.Unavailable, err)
	}
	return ag, nil
}

// List is every account, by name, without password hashes.
func (a *Agents) List(ctx context.Context) ([]Agent, error) {
	rows, err := a.pool.Query(ctx, `SELECT `+agentColumns+` FROM handoff_agent a ORDER BY a.name, a.id`)
	if err != nil {
		return nil, kefu.E("handoff.ListAgents", kefu.Unavailable, err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Agent, error) { return scanAgent(row) })
}

const agentColumns = `a.id, a.email, a.name, a.languages, a.max_chats, a.status, a.roles, a.channel_max`

func scanAgent(row pgx.Row) (Agent, error) {
	var ag Agent
	var chanMax []byte
	if err := row.Scan(&ag.ID, &ag.Email, &ag.Name, &ag.Languages, &ag.MaxChats, &ag.Status, &ag.Roles, &chanMax); err != nil {
		return Agent{}, err
	}
	if err := json.Unmarshal(chanMax, &ag.ChannelMax); err != nil {
		return Agent{}, err
	}
	return ag, nil
}

// AgentChange is a change to an account; nil fields stay as they are.
type AgentChange struct {
	Name       *string         `json:"name"`
	Languages  *[]string       `json:"languages"`
	MaxChats   *int            `json:"max_chats"`
	ChannelMax *map[string]int `json:"channel_max"`
	Roles      *[]string       `json:"roles"`
}

// Update changes an account. Lowering max_chats below the chats an agent holds keeps those
// chats; no new one comes until the agent is under the new limit.
func (a *Agents) Update(ctx context.Context, id int64, c AgentChange) (Agent, error) {
	const op = "handoff.UpdateAgent"
	if c.MaxChats != nil && (*c.MaxChats < 1 || *c.MaxChats > 100) {
		return Agent{}, kefu.Errorf(op, kefu.Invalid, "max_chats must be 1 to 100")
	}
	if c.Roles != nil {
		if len(*c.Roles) == 0 {
			return Agent{}, kefu.Errorf(op, kefu.Invalid, "an account needs at least one role")
		}
		for _, r := range *c.Roles {
			if r != RoleAdmin && r != RoleSupervisor && r != RoleAgent && r != RoleEditor {
				return Agent{}, kefu.Errorf(op, kefu.Invalid, "unknown role %q (admin, supervisor, agent, editor)", r)
			}
		}
	}
	if c.Name != nil && (strings.TrimSpace(*c.Name) == "" || len(*c.Name) > 200) {
		return Agent{}, kefu.Errorf(op, kefu.Invalid, "a name is 1–200 bytes")
	}
	var chanMax []byte
	if c.ChannelMax != nil {
		for ch, n := range *c.ChannelMax {
			if ch == "" || n < 1 {
				return Agent{}, kefu.Errorf(op, kefu.Invalid, "channel_max needs channel names and caps of at least 1")
			}
		}
		chanMax, _ = json.Marshal(*c.ChannelMax)
	}
	var langs []string
	if c.Languages != nil {
		langs = *c.Languages
		if langs == nil {
			langs = []string{}
		}
	}
	var roles []string
	if c.Roles != nil {
		roles = *c.Roles
	}
	ag, err := scanAgent(a.pool.QueryRow(ctx, `
UPDATE handoff_agent a SET name = coalesce($2, name), languages = coalesce($3, languages), max_chats = coalesce($4, max_chats),
       channel_max = coalesce($5, channel_max), roles = coalesce($6, roles)
WHERE id = $1 RETURNING `+agentColumns, id, c.Name, langs, c.MaxChats, chanMax, roles))
	if errors.Is(err, pgx.ErrNoRows) {
		return Agent{}, kefu.Errorf(op, kefu.NotFound, "no account %d", id)
	}
	if err != nil {
		return Agent{}, kefu.E(op, kefu.Unavailable, err)
	}
	return ag, nil
}

// Count is the number of agents.
func (a *Agents) Count(ctx context.Context) (int, error) {
	var n int
	if err := a.pool.QueryRow(ctx, "SELECT count(*) FROM handoff_agent").Scan(&n); err != nil {
		return 0, kefu.E("handoff.CountAgents", kefu.Unavailable, err)
	}
	return n, nil
}

// Login checks an e-mail and password and returns a bearer token. A wrong e-mail and a wrong
// password give the same Unauthorized error.
func (a *Agents) Login(ctx context.Context, email, password string) (string, Agent, error) {
	const op = "handoff.Login"
	const q = `SELECT id, email, name, languages, max_chats, status, roles, password_hash FROM handoff_agent WHERE email = $1`
	var ag Agent
	var hash string
	err := a.pool.QueryRow(ctx, q, strings.ToLower(strings.TrimSpace(email))).
		Scan(&ag.ID, &ag.Email, &ag.Name, &ag.Languages, &ag.MaxChats, &ag.Status, &ag.Roles, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		_, _ = hashPassword(password) // same work as a real check: no timing oracle for e-mails
		return "", Agent{}, kefu.Errorf(op, kefu.Unauthorized, "wrong e-mail or password")
	}
	if err != nil {
		return "", Agent{}, kefu.E(op, kefu.Unavailable, err)
	}
	if !checkPassword(hash, password) {
		return "", Agent{}, kefu.Errorf(op, kefu.Unauthorized, "wrong e-mail or password")
	}
	tok, tokHash := token.New()
	_, err = a.pool.Exec(ctx, "INSERT INTO handoff_token (token_hash, agent_id, expires_at) VALUES ($1, $2, $3)",
		tokHash, ag.ID, a.now().Add(TokenTTL))
	if err != nil {
		return "", Agent{}, kefu.E(op, kefu.Unavailable, err)
	}
	a.log.InfoContext(ctx, "agent logged in", "agent_id", ag.ID)
	return tok, ag, nil
}

// Authenticate returns the agent that holds token.
func (a *Agents) Authenticate(ctx context.Context, bearer string) (Agent, error) {
	const op = "handoff.Authenticate"
	if bearer == "" {
		return Agent{}, kefu.Errorf(op, kefu.Unauthorized, "log in first")
	}
	const q = `
SELECT a.id, a.email, a.name, a.languages, a.max_chats, a.status, a.roles
FROM handoff_token t JOIN handoff_agent a ON a.id = t.agent_id
WHERE t.token_hash = $1 AND t.expires_at > $2`
	var ag Agent
	err := a.pool.QueryRow(ctx, q, token.Hash(bearer), a.now()).Scan(&ag.ID, &ag.Email, &ag.Name, &ag.Languages, &ag.MaxChats, &ag.Status, &ag.Roles)
	if errors.Is(err, pgx.ErrNoRows) {
		return Agent{}, kefu.Errorf(op, kefu.Unauthorized, "the login has expired or is not valid")
	}
	if err != nil {
		return Agent{}, kefu.E(op, kefu.Unavailable, err)
	}
	return ag, nil
}

// SetPassword gives an account a new password and ends its logins: every token it holds is
// revoked, so a console opened with the old password must log in again.
func (a *Agents) SetPassword(ctx context.Context, agentID int64, password string) error {
	const op = "handoff.SetPassword"
	if len(password) < 8 {
		return kefu.Errorf(op, kefu.Invalid, "a password needs at least 8 characters")
	}
	hash, err := hashPassword(password)
	if err != nil {
		return kefu.E(op, kefu.Internal, err)
	}
	b := &pgx.Batch{}
	var n int64
	b.Queue("UPDATE handoff_agent SET password_hash = $2 WHERE id = $1", agentID, hash).Exec(func(tag pgconn.CommandTag) error {
		n = tag.RowsAffected()
		return nil
	})
	b.Queue("DELETE FROM handoff_token WHERE agent_id = $1", agentID)
	if err := pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() }); err != nil {
		return kefu.E(op, kefu.Unavailable, err)
	}
	if n == 0 {
		return kefu.Errorf(op, kefu.NotFound, "no account %d", agentID)
	}
	a.log.InfoContext(ctx, "password changed", "agent_id", agentID)
	return nil
}

// SetStatus records an agent's presence.
func (a *Agents) SetStatus(ctx context.Context, agentID int64, status string) error {
	const op = "handoff.SetStatus"
	if status != Online && status != Away && status != Offline {
		return kefu.Errorf(op, kefu.Invalid, "status must be online, away or offline")
	}
	tag, err := a.pool.Exec(ctx, "UPDATE handoff_agent SET status = $2, last_seen = $3, auto_away = false WHERE id = $1", agentID, status, a.now())
	if err != nil {
		return kefu.E(op, kefu.Unavailable, err)
	}
	if tag.RowsAffected() == 0 {
		return kefu.Errorf(op, kefu.NotFound, "no agent %d", agentID)
	}
	return nil
}

// argon2id parameters (RFC 9106's second recommendation, with less memory for small hosts).
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

func hashPassword(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

func checkPassword(encoded, password string) bool {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}
