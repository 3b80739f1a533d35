package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kefu-dev/kefu"
	"github.com/kefu-dev/kefu/handoff"
)

// LoadAgents is what the load generator's agents did: consoles opened, conversations
// offered and accepted, customer messages answered, and what went wrong.
type LoadAgents struct {
	Agents   int              `json:"agents"`
	Online   int64            `json:"online"`
	Targets  []string         `json:"targets"`
	Offered  int64            `json:"offered"`
	Received int64            `json:"customer_messages"`
	Replies  int64            `json:"replies"`
	Errors   map[string]int64 `json:"errors,omitempty"`
}

// loadDesk is the load generator's agents: accounts it makes in the servers' database (in
// every skill group, so that any escalation can reach them), each with a console on one of
// the targets — the targets taken from the last, so that with several instances a
// customer's agent is mostly on another instance than the customer. An agent accepts every
// offer, answers each customer message at once, goes back online when an offer lapses, and
// closes what it holds when the run ends (and what an earlier run left it when it starts), so
// that runs against one database do not leave its agents full.
type loadDesk struct {
	n, chats int
	targets  []string // base URLs the consoles connect to
	client   *http.Client
	dialer   *websocket.Dialer
	log      *slog.Logger

	online, offered, received, replies atomic.Int64
	closing                            atomic.Bool // the consoles are being closed: reads that end are no errors
	mu                                 sync.Mutex
	errors                             map[string]int64
	consoles                           []*loadConsole
	wg                                 sync.WaitGroup
}

// loadConsole is one agent's console connection and the conversations it holds.
type loadConsole struct {
	ws   *websocket.Conn
	wmu  sync.Mutex // one writer at a time
	mu   sync.Mutex
	held map[int64]bool // accepted, not closed
}

// write sends one frame; a failure is counted unless the desk is closing.
func (d *loadDesk) write(c *loadConsole, v any) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.ws.WriteJSON(v); err != nil {
		if !d.closing.Load() {
			d.count("write: " + netErrorKind(err))
		}
		return false
	}
	return true
}

// loadAgentEmail is the login of the load generator's agent i.
func loadAgentEmail(i int) string { return fmt.Sprintf("loadgen-agent-%d@loadgen.kefu.local", i) }

// prepare makes (or takes back) the agents' accounts with a new password each run, and puts
// them in every skill group. It returns the password.
func (d *loadDesk) prepare(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	password := hex.EncodeToString(b)
	agents := handoff.NewAgents(pool, d.log)
	existing, err := agents.List(ctx)
	if err != nil {
		return "", err
	}
	byEmail := map[string]handoff.Agent{}
	for _, a := range existing {
		byEmail[a.Email] = a
	}
	ids := make([]int64, 0, d.n)
	for i := range d.n {
		email := loadAgentEmail(i)
		if a, ok := byEmail[email]; ok {
			if err := agents.SetPassword(ctx, a.ID, password); err != nil {
				return "", err
			}
			if _, err := agents.Update(ctx, a.ID, handoff.AgentChange{MaxChats: &d.chats}); err != nil {
				return "", err
			}
			ids = append(ids, a.ID)
			continue
		}
		a, err := agents.Create(ctx, handoff.Agent{Email: email, Name: "Load agent " + strconv.Itoa(i), MaxChats: d.chats,
			Roles: []string{handoff.RoleAgent}}, password)
		if err != nil {
			return "", fmt.Errorf("agent %s: %w", email, err)
		}
		ids = append(ids, a.ID)
	}
	desk := handoff.NewDesk(pool)
	groups, err := desk.Groups(ctx)
	if err != nil {
		return "", err
	}
	if len(groups) == 0 {
		return "", errors.New("the database has no skill group for the agents to join (serve with -demo, or make one on the supervisor page)")
	}
	for _, g := range groups {
		for _, id := range ids {
			if !slices.Contains(g.Members, id) {
				g.Members = append(g.Members, id)
			}
		}
		if _, err := desk.SaveGroup(ctx, g); err != nil {
			return "", fmt.Errorf("skill group %s: %w", g.Name, err)
		}
	}
	return password, nil
}

// start logs every agent in and opens their consoles; it returns once all are online (or
// failed, counted in the errors).
func (d *loadDesk) start(ctx context.Context, password string) {
	var wg sync.WaitGroup
	for i := range d.n {
		wg.Go(func() {
			target := d.targets[len(d.targets)-1-i%len(d.targets)]
			ws, left, err := d.open(ctx, target, loadAgentEmail(i), password)
			if err != nil {
				d.count("open: " + err.Error())
				return
			}
			c := &loadConsole{ws: ws, held: map[int64]bool{}}
			d.mu.Lock()
			d.consoles = append(d.consoles, c)
			d.mu.Unlock()
			d.online.Add(1)
			d.wg.Go(func() { d.serve(i, c) })
			for _, id := range left { // an earlier run's, still assigned to this agent
				d.write(c, map[string]any{"type": "close", "session_id": id, "disposition": "resolved"})
			}
		})
	}
	wg.Wait()
}

// open logs in, says hello and goes online; it returns the conversations the agent still
// holds (the welcome lists them).
func (d *loadDesk) open(ctx context.Context, base, email, password string) (*websocket.Conn, []int64, error) {
	body, _ := json.Marshal(map[string]string{"email": email, "password": password})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/agent/login", bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, nil, errors.New("login: " + netErrorKind(err))
	}
	var login struct {
		Token string `json:"token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil || login.Token == "" {
		return nil, nil, fmt.Errorf("login: HTTP %d", resp.StatusCode)
	}
	ws, _, err := d.dialer.DialContext(ctx, wsURL(base, "/ws/agent"), nil)
	if err != nil {
		return nil, nil, errors.New("dial: " + netErrorKind(err))
	}
	fail := func(what string) error { ws.Close(); return errors.New(what) }
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	if err := ws.WriteJSON(map[string]string{"type": "hello", "token": login.Token}); err != nil {
		return nil, nil, fail("hello: " + netErrorKind(err))
	}
	var left []int64
	for {
		var f struct {
			Type        string `json:"type"`
			Code        string `json:"code"`
			Assignments []struct {
				Assignment struct {
					SessionID int64 `json:"session_id"`
				} `json:"assignment"`
			} `json:"assignments"`
		}
		if err := ws.ReadJSON(&f); err != nil {
			return nil, nil, fail("no welcome: " + netErrorKind(err))
		}
		if f.Type == "error" {
			return nil, nil, fail("hello refused: " + f.Code)
		}
		if f.Type == "welcome" {
			for _, a := range f.Assignments {
				left = append(left, a.Assignment.SessionID)
			}
			break
		}
	}
	_ = ws.SetReadDeadline(time.Time{})
	if err := ws.WriteJSON(map[string]string{"type": "presence", "status": handoff.Online}); err != nil {
		return nil, nil, fail("presence: " + netErrorKind(err))
	}
	return ws, left, nil
}

// loadAgentFrame is what an agent reads of the server's frames.
type loadAgentFrame struct {
	Type       string `json:"type"`
	Code       string `json:"code"`
	Status     string `json:"status"`     // sync: the agent's presence
	SessionID  int64  `json:"session_id"` // closed, lapsed
	Assignment struct {
		SessionID int64 `json:"session_id"`
	} `json:"assignment"`
	Message struct {
		SessionID int64  `json:"session_id"`
		Role      string `json:"role"`
	} `json:"message"`
}

// serve is one agent's console: it accepts offers, answers customers, goes back online when
// the server made it away (an offer that lapsed), and beats the heart until the connection
// closes.
func (d *loadDesk) serve(i int, c *loadConsole) {
	beat := time.NewTicker(15 * time.Second)
	defer beat.Stop()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-beat.C:
				d.write(c, map[string]string{"type": "heartbeat"})
			case <-stop:
				return
			}
		}
	}()
	online := map[string]string{"type": "presence", "status": handoff.Online}
	n := 0
	for {
		var f loadAgentFrame
		if err := c.ws.ReadJSON(&f); err != nil {
			var ce *websocket.CloseError
			if !d.closing.Load() && !errors.As(err, &ce) {
				d.count("console lost: " + netErrorKind(err))
			}
			return
		}
		switch f.Type {
		case "assigned":
			d.offered.Add(1)
			c.mu.Lock()
			c.held[f.Assignment.SessionID] = true
			c.mu.Unlock()
			d.write(c, map[string]any{"type": "accept", "session_id": f.Assignment.SessionID})
		case "closed", "lapsed", "transferred":
			c.mu.Lock()
			delete(c.held, f.SessionID)
			c.mu.Unlock()
			if f.Type == "lapsed" && !d.closing.Load() {
				d.write(c, online)
			}
		case "sync":
			if f.Status == handoff.Away && !d.closing.Load() {
				d.write(c, online)
			}
		case "message":
			if f.Message.Role != "customer" {
				continue
			}
			d.received.Add(1)
			n++
			if d.write(c, map[string]any{"type": "reply", "session_id": f.Message.SessionID,
				"client_id": "lga" + strconv.Itoa(i) + "-" + strconv.Itoa(n), "text": "好的，我来帮您查一下。Let me check that for you."}) {
				d.replies.Add(1)
			}
		case "error":
			if !d.closing.Load() {
				d.count("error frame: " + f.Code)
			}
		}
	}
}

func (d *loadDesk) count(kind string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.errors[kind]++
}

// close closes what the agents hold (so that the next run finds them free), waits up to 5 s
// for the server to confirm, then closes the consoles and waits for them.
func (d *loadDesk) close() {
	d.closing.Store(true)
	d.mu.Lock()
	consoles := d.consoles
	d.mu.Unlock()
	for _, c := range consoles {
		c.mu.Lock()
		held := slices.Collect(maps.Keys(c.held))
		c.mu.Unlock()
		for _, id := range held {
			d.write(c, map[string]any{"type": "close", "session_id": id, "disposition": "resolved"})
		}
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		left := 0
		for _, c := range consoles {
			c.mu.Lock()
			left += len(c.held)
			c.mu.Unlock()
		}
		if left == 0 {
			break
		}
	}
	for _, c := range consoles {
		c.wmu.Lock()
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		c.wmu.Unlock()
		c.ws.Close()
	}
	d.wg.Wait()
}

// report is what the agents did.
func (d *loadDesk) report() *LoadAgents {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := &LoadAgents{Agents: d.n, Online: d.online.Load(), Offered: d.offered.Load(), Received: d.received.Load(),
		Replies: d.replies.Load(), Errors: map[string]int64{}}
	for _, t := range d.targets {
		if !slices.Contains(r.Targets, t) {
			r.Targets = append(r.Targets, t)
		}
	}
	for k, v := range d.errors {
		r.Errors[k] = v
	}
	return r
}

// openLoadDesk prepares and opens the agents: accounts through pool, consoles on targets.
func openLoadDesk(ctx context.Context, pool *pgxpool.Pool, n, chats int, targets []string, client *http.Client,
	dialer *websocket.Dialer, log *slog.Logger) (*loadDesk, error) {
	d := &loadDesk{n: n, chats: chats, targets: targets, client: client, dialer: dialer, log: log, errors: map[string]int64{}}
	password, err := d.prepare(ctx, pool)
	if err != nil {
		return nil, kefu.E("loadgen.agents", "", err)
	}
	d.start(ctx, password)
	if d.online.Load() == 0 {
		d.close()
		return nil, fmt.Errorf("no agent console opened: %v", d.report().Errors)
	}
	return d, nil
}

// openSocketDesk opens the agents over TCP, their accounts made through -database-url.
func (o *loadRun) openSocketDesk(ctx context.Context) (*loadDesk, error) {
	pool, err := openPool(ctx, o.databaseURL)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	client := &http.Client{Timeout: 30 * time.Second}
	dialer := &websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	return openLoadDesk(ctx, pool, o.agents, o.agentChats, o.agentTargets, client, dialer, o.log)
}
