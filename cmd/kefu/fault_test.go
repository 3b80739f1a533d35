package main

// Fault tests: the database restarted in the middle of conversations, one of two instances
// killed under load, a graceful shutdown, abusive traffic, and the widget's reconnection.
// Customers here behave as the widget does: each message has a client id and is sent again,
// with the same id, after an error that says to retry or a lost connection; a reconnecting
// customer says hello with the last seq it has in a row and gets what it missed.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kefu-dev/kefu/internal/localpg"
	"github.com/kefu-dev/kefu/internal/pgtest"
	"github.com/kefu-dev/kefu/nlu"
)

// faultTexts are questions the demo bot answers (no flow, no escalation), in both languages.
var faultTexts = []string{"退款多久到账？", "How long does shipping take?", "你好", "Which payment methods do you accept?",
	"运费多少钱？", "how much is shipping?", "谢谢"}

// faultCustomer is one customer of a fault test: it sends messages one after another, each
// with its client id, waits for the bot's reply, and records what the server delivered.
type faultCustomer struct {
	t     *testing.T
	name  string
	id    int64
	token string
	bases []string // the instances it may use; it starts on the first
	local string   // source address to dial from ("": any)

	mu         sync.Mutex
	at         int              // index in bases of the current or last connection
	delivered  map[int64]int    // seq → times the server pushed it (welcome backlog or message frame)
	contiguous int64            // every seq up to this one has arrived
	acked      map[string]int64 // client id → the seq the server stored it at
	dups       []string         // deliveries the client had not asked for twice
	refetched  int              // backlog messages above since the client had (after a hole)
	codes      map[string]int   // error frames by code
	closes     map[int]int      // close codes heard
	connects   int              // the first is not a reconnection
	answered   int              // messages whose reply arrived
	answeredAt []time.Time
	latency    []time.Duration // first send → the reply

	conn   *fconn
	events []string // what happened while asking the current message, for a slow answer's log
}

func (c *faultCustomer) event(format string, args ...any) {
	c.events = append(c.events, fmt.Sprintf("%s "+format, append([]any{time.Now().Format("05.000")}, args...)...))
}

func newFaultCustomer(t *testing.T, name string, bases ...string) *faultCustomer {
	t.Helper()
	id, token := newSession(t, bases[0])
	return &faultCustomer{t: t, name: name, id: id, token: token, bases: bases, delivered: map[int64]int{},
		acked: map[string]int64{}, codes: map[string]int{}, closes: map[int]int{}}
}

// fconn is one WebSocket connection with a reader goroutine.
type fconn struct {
	ws     *websocket.Conn
	frames chan frameMsg
	err    error // why the connection ended, once frames is closed
}

func (c *faultCustomer) dialer() *websocket.Dialer {
	d := &websocket.Dialer{HandshakeTimeout: 3 * time.Second}
	if c.local != "" {
		nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(c.local)}, Timeout: 3 * time.Second}
		d.NetDialContext = nd.DialContext
	}
	return d
}

func dialFrames(d *websocket.Dialer, base string) (*fconn, error) {
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(base, "http")+"/ws/customer", nil)
	if err != nil {
		return nil, err
	}
	c := &fconn{ws: ws, frames: make(chan frameMsg, 1024)}
	go func() {
		defer close(c.frames)
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				c.err = err
				return
			}
			var f frameMsg
			if err := json.Unmarshal(data, &f); err != nil {
				c.err = fmt.Errorf("bad frame %q: %w", data, err)
				return
			}
			c.frames <- f
		}
	}()
	return c, nil
}

// note records the messages a frame delivers; since is the hello's for a welcome.
func (c *faultCustomer) note(f frameMsg, since int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	add := func(m chatMsg, backlog bool) {
		if c.delivered[m.Seq] > 0 {
			if backlog && m.Seq > since {
				c.refetched++ // asked for again: the client had a hole below it
			} else {
				c.dups = append(c.dups, fmt.Sprintf("seq %d (%s, backlog %v)", m.Seq, m.Role, backlog))
			}
		}
		c.delivered[m.Seq]++
		for c.delivered[c.contiguous+1] > 0 {
			c.contiguous++
		}
	}
	switch f.Type {
	case "welcome":
		for _, m := range f.Messages {
			add(m, true)
		}
	case "message":
		var m chatMsg
		if json.Unmarshal(f.Message, &m) == nil && m.Seq > 0 {
			add(m, false)
		}
	}
}

func (c *faultCustomer) noteClose(err error) {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		c.mu.Lock()
		c.closes[ce.Code]++
		c.mu.Unlock()
	}
}

// drop ends the current connection.
func (c *faultCustomer) drop() {
	if c.conn != nil {
		c.conn.ws.Close()
		for range c.conn.frames {
		}
		c.noteClose(c.conn.err)
		c.conn = nil
	}
}

// connect opens a connection and says hello with the last seq in a row, going to the next
// instance when one does not answer, until it is welcomed or ctx ends.
func (c *faultCustomer) connect(ctx context.Context) bool {
	backoff := 100 * time.Millisecond
	for first := true; ctx.Err() == nil; first = false {
		if !first {
			sleepCtx(ctx, backoff/2+rand.N(backoff/2))
			backoff = min(backoff*2, 2*time.Second)
		}
		c.mu.Lock()
		base, since := c.bases[c.at], c.contiguous
		c.mu.Unlock()
		conn, err := dialFrames(c.dialer(), base)
		c.event("dial %s since %d: %v", base, since, err)
		if err != nil {
			c.mu.Lock()
			c.at = (c.at + 1) % len(c.bases)
			c.mu.Unlock()
			continue
		}
		c.conn = conn
		if err := conn.ws.WriteJSON(map[string]any{"type": "hello", "session_id": c.id, "token": c.token, "since": since}); err != nil {
			c.drop()
			continue
		}
		timeout := time.After(10 * time.Second)
	wait:
		for {
			select {
			case f, ok := <-conn.frames:
				if !ok {
					break wait
				}
				c.event("hello got %s %s", f.Type, f.Code)
				switch f.Type {
				case "welcome":
					c.note(f, since)
					return true
				case "error":
					c.mu.Lock()
					c.codes[f.Code]++
					c.mu.Unlock()
					break wait // the database may be away: again, on a new connection
				}
			case <-timeout:
				break wait
			case <-ctx.Done():
				break wait
			}
		}
		c.drop()
	}
	return false
}

// run sends messages until ctx ends, each after the reply to the one before and a short
// think time.
func (c *faultCustomer) run(ctx context.Context, think time.Duration) {
	defer c.drop()
	for n := 0; ctx.Err() == nil; n++ {
		cid := fmt.Sprintf("%s-m%d", c.name, n)
		if !c.ask(ctx, cid, faultTexts[(int(c.id)+n)%len(faultTexts)]) {
			return
		}
		sleepCtx(ctx, think/2+rand.N(think))
	}
}

// ask sends one message until the server stores it and its reply arrives; false when ctx
// ended first.
func (c *faultCustomer) ask(ctx context.Context, cid, text string) bool {
	start := time.Now()
	c.events = nil
	var ackSeq int64
	answered := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return ackSeq > 0 && c.delivered[ackSeq+1] > 0
	}
	resend := time.Duration(0)
	for ctx.Err() == nil {
		if c.conn == nil {
			if !c.connect(ctx) {
				return false
			}
			c.mu.Lock()
			c.connects++
			c.mu.Unlock()
		}
		if answered() {
			break
		}
		if resend > 0 {
			sleepCtx(ctx, resend/2+rand.N(resend/2))
		}
		if err := c.conn.ws.WriteJSON(map[string]any{"type": "message", "client_id": cid, "text": text}); err != nil {
			c.drop()
			continue
		}
		progress := time.After(10 * time.Second)
	wait:
		for {
			if answered() {
				break
			}
			select {
			case f, ok := <-c.conn.frames:
				if !ok {
					c.event("closed: %v", c.conn.err)
					c.drop()
					break wait
				}
				c.event("got %s %s %s %d", f.Type, f.Code, f.ClientID, f.Seq)
				switch f.Type {
				case "welcome", "message":
					c.note(f, 0)
				case "ack":
					if f.ClientID != cid {
						continue
					}
					ackSeq = f.Seq
					c.mu.Lock()
					c.acked[cid] = f.Seq
					resync := f.Duplicate && c.delivered[f.Seq] == 0 && f.Seq > c.contiguous
					c.mu.Unlock()
					if resync {
						// Stored before a failure, its frames never came: resume to get them.
						c.drop()
						break wait
					}
				case "error":
					if f.ClientID != "" && f.ClientID != cid {
						continue
					}
					c.mu.Lock()
					c.codes[f.Code]++
					c.mu.Unlock()
					resend = max(200*time.Millisecond, min(resend*2, 2*time.Second))
					break wait
				}
			case <-progress:
				c.event("no progress")
				c.drop() // nothing for 10 s: resume on a new connection
				break wait
			case <-ctx.Done():
				return false
			}
		}
	}
	if !answered() {
		return false
	}
	if d := time.Since(start); d > 5*time.Second {
		c.t.Logf("%s: %s answered after %v (ack seq %d): %s", c.name, cid, d.Round(time.Millisecond), ackSeq, strings.Join(c.events, "; "))
	}
	c.mu.Lock()
	c.answered++
	c.answeredAt = append(c.answeredAt, time.Now())
	c.latency = append(c.latency, time.Since(start))
	c.mu.Unlock()
	return true
}

// resync says hello once more, so that every message stored so far has arrived.
func (c *faultCustomer) resync(ctx context.Context) {
	c.drop()
	if c.connect(ctx) {
		time.Sleep(50 * time.Millisecond)
		c.drop()
	}
}

// answeredSince counts the replies that arrived after t.
func (c *faultCustomer) answeredSince(t time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, a := range c.answeredAt {
		if a.After(t) {
			n++
		}
	}
	return n
}

// allAnswered reports whether every customer got at least n replies after since.
func allAnswered(cs []*faultCustomer, since time.Time, n int) bool {
	for _, c := range cs {
		if c.answeredSince(since) < n {
			return false
		}
	}
	return true
}

// finish stops the customers, waits for them, reads each one's transcript again and sums up.
func finish(ctx context.Context, cs []*faultCustomer, stop func(), wg *sync.WaitGroup) faultReport {
	stop()
	wg.Wait()
	for _, c := range cs {
		c.resync(ctx)
	}
	return summarize(cs)
}

func (c *faultCustomer) ackCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.acked)
}

// faultReport sums the customers' records.
type faultReport struct {
	acked, answered, reconnects, refetched int
	codes                                  map[string]int
	closes                                 map[int]int
	latency                                []time.Duration
}

func summarize(cs []*faultCustomer) faultReport {
	r := faultReport{codes: map[string]int{}, closes: map[int]int{}}
	for _, c := range cs {
		c.mu.Lock()
		r.acked += len(c.acked)
		r.answered += c.answered
		r.reconnects += max(c.connects-1, 0)
		r.refetched += c.refetched
		for k, v := range c.codes {
			r.codes[k] += v
		}
		for k, v := range c.closes {
			r.closes[k] += v
		}
		r.latency = append(r.latency, c.latency...)
		c.mu.Unlock()
	}
	return r
}

func faultQuantile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func (r faultReport) String() string {
	return fmt.Sprintf("%d acknowledged, %d answered (p50 %v, p99 %v, max %v), %d reconnections, error frames %v, close codes %v, %d re-fetched",
		r.acked, r.answered, faultQuantile(r.latency, 0.5).Round(time.Millisecond), faultQuantile(r.latency, 0.99).Round(time.Millisecond),
		faultQuantile(r.latency, 1).Round(time.Millisecond), r.reconnects, r.codes, r.closes, r.refetched)
}

// verifyDelivery checks, against the database, each customer's record: every message the
// server acknowledged is stored once, where the ack said, with the bot's reply after it; no
// client id is stored twice; and the customer got every message of the session exactly once.
func verifyDelivery(t *testing.T, pool *pgxpool.Pool, cs []*faultCustomer) {
	t.Helper()
	ctx := context.Background()
	var dupIDs int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM dialog_message WHERE client_id IS NOT NULL
		GROUP BY session_id, role, client_id HAVING count(*) > 1) d`).Scan(&dupIDs); err != nil {
		t.Fatal(err)
	}
	if dupIDs > 0 {
		t.Errorf("%d client ids stored more than once", dupIDs)
	}
	for _, c := range cs {
		type row struct {
			seq      int64
			role     string
			clientID string
		}
		rows, err := pool.Query(ctx, `SELECT seq, role, coalesce(client_id, '') FROM dialog_message WHERE session_id = $1 ORDER BY seq`, c.id)
		if err != nil {
			t.Fatal(err)
		}
		var stored []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.seq, &r.role, &r.clientID); err != nil {
				t.Fatal(err)
			}
			stored = append(stored, r)
		}
		rows.Close()
		if rows.Err() != nil {
			t.Fatal(rows.Err())
		}
		bySeq := map[int64]row{}
		byClient := map[string][]int64{}
		for i, r := range stored {
			if r.seq != int64(i+1) {
				t.Errorf("%s: session %d has seq %d at position %d", c.name, c.id, r.seq, i+1)
			}
			bySeq[r.seq] = r
			if r.role == "customer" && r.clientID != "" {
				byClient[r.clientID] = append(byClient[r.clientID], r.seq)
			}
		}
		c.mu.Lock()
		for cid, seq := range c.acked {
			if got := byClient[cid]; len(got) != 1 || got[0] != seq {
				t.Errorf("%s: acknowledged %s at seq %d; stored at %v", c.name, cid, seq, got)
				continue
			}
			if r, ok := bySeq[seq+1]; !ok || r.role != "bot" {
				t.Errorf("%s: message %s (seq %d) has no bot reply after it (next: %+v)", c.name, cid, seq, r)
			}
		}
		for _, d := range c.dups {
			t.Errorf("%s: delivered twice: %s", c.name, d)
		}
		last := int64(len(stored))
		if c.contiguous != last {
			var missing []int64
			for s := int64(1); s <= last; s++ {
				if c.delivered[s] == 0 {
					missing = append(missing, s)
				}
			}
			t.Errorf("%s: session %d has %d messages; the customer has them in a row up to %d, missing %v", c.name, c.id, last, c.contiguous, missing)
		}
		c.mu.Unlock()
	}
}

// startMainAt runs the server in this process against the database at url.
func startMainAt(t *testing.T, url string, configure func(*Config)) *Main {
	t.Helper()
	m := &Main{
		Config: Config{Addr: "127.0.0.1:0", DatabaseURL: url, ORTLib: nlu.FindRuntime(), ModelDir: "../../models/intent", FlowsDir: "../../dialog/flows",
			EncoderDir: "../../models/encoder", KBAnswerability: "../../models/answerability", KBFallback: "en",
			Demo: true, KBThreshold: 0.6, EscalateAfter: 2, RouteInterval: 200 * time.Millisecond, DemoPassword: "demo-password"},
		Log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError})), // a fault test expects warnings
	}
	if configure != nil {
		configure(&m.Config)
	}
	if err := m.Run(t.Context()); err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// privateCluster starts a PostgreSQL cluster of the test's own (its folder and socket under
// t.TempDir), which the test may stop and start; the shared test cluster is never touched.
func privateCluster(t *testing.T) *localpg.Cluster {
	t.Helper()
	dir := t.TempDir()
	// t.TempDir is private to its user; when the tests run as root, the cluster runs as the
	// postgres user, which must reach it.
	for _, d := range []string{dir, filepath.Dir(dir)} {
		_ = os.Chmod(d, 0o755)
	}
	want := filepath.Join(dir, "pg")
	c, err := localpg.New(want, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("stopping the private cluster: %v", err)
		}
		if c.Dir != want { // moved elsewhere (see localpg.New): not under t.TempDir
			_ = os.RemoveAll(c.Dir)
		}
	})
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureDatabase(t.Context(), "kefu"); err != nil {
		t.Fatal(err)
	}
	return c
}

// waitFor polls cond every 20 ms until it holds, failing after d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func totalAcks(cs []*faultCustomer) int {
	n := 0
	for _, c := range cs {
		n += c.ackCount()
	}
	return n
}

// TestPostgresRestartMidConversation: 50 customers talk to the bot, on two instances, while
// PostgreSQL is stopped and started again under them. The servers stay up and keep their
// connections (or the customers reconnect); turns in the gap fail with a retryable error
// frame and the customers send them again with the same client id; once the database is
// back every customer is answered again, the database holds every acknowledged message once
// with its reply, and the instances' LISTEN connections are back: a customer on one and an
// agent on the other talk to each other.
func TestPostgresRestartMidConversation(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a PostgreSQL cluster")
	}
	t.Parallel()
	cluster := privateCluster(t)
	m := startMainAt(t, cluster.URL("kefu"), nil)
	other := startMainAt(t, cluster.URL("kefu"), nil) // whose broker and queue must listen again
	warmUp(t, m.URL)
	warmUp(t, other.URL)

	const customers = 50
	cs := make([]*faultCustomer, customers)
	for i := range cs {
		base := []string{m.URL, other.URL}[i%2]
		cs[i] = newFaultCustomer(t, fmt.Sprint("c", i), base)
	}
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() { c.run(ctx, 300*time.Millisecond) })
	}
	waitUntil(t, 30*time.Second, "100 messages acknowledged before the restart", func() bool { return totalAcks(cs) >= 100 })
	before := summarize(cs)
	restart := time.Now()
	sctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := cluster.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // customers keep sending meanwhile
	if err := cluster.Start(sctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL stopped and started again in %v", time.Since(restart).Round(time.Millisecond))
	waitUntil(t, 40*time.Second, "every customer answered twice after the restart", func() bool { return allAnswered(cs, restart, 2) })
	r := finish(t.Context(), cs, stop, &wg)
	t.Logf("before the restart: %v", before)
	t.Logf("in all: %v", r)
	for code, n := range r.codes {
		if code != "unavailable" && code != "rate_limited" {
			t.Errorf("%d error frames with code %q: a database that went away must be unavailable (retry)", n, code)
		}
	}
	for _, s := range []*Main{m, other} {
		if !waitReady(s.URL, 15*time.Second) {
			t.Error("/readyz did not say ready in 15 s after the restart")
		}
	}
	// Both instances listen again: a customer on one and an agent on the other talk.
	crossInstance(t, m.URL, other.URL)
	pool, err := openPool(t.Context(), cluster.URL("kefu"))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	verifyDelivery(t, pool, cs)
}

// serveProcess is a `kefu serve` of its own: the test binary run as kefu.
type serveProcess struct {
	cmd  *exec.Cmd
	base string
	log  *bytes.Buffer
}

func faultAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServe starts `kefu serve` on url and waits until it is ready.
func startServeProcess(t *testing.T, url string, args ...string) *serveProcess {
	t.Helper()
	addr := faultAddr(t)
	p := &serveProcess{base: "http://" + addr, log: &bytes.Buffer{}}
	p.cmd = exec.Command(os.Args[0], append([]string{"serve", "-addr", addr, "-database-url", url, "-onnxruntime-lib", nlu.FindRuntime(),
		"-model", "../../models/intent", "-flows", "../../dialog/flows", "-encoder-model", "../../models/encoder",
		"-kb-answerability", "../../models/answerability", "-route-interval", "200ms", "-escalate-after", "2"}, args...)...)
	p.cmd.Env = append(os.Environ(), "KEFU_TEST_RUN_MAIN=1", "KEFU_LOG_LEVEL=ERROR", "KEFU_DEMO_PASSWORD=demo-password")
	p.cmd.Stderr = &syncWriter{w: p.log}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	})
	if !waitReady(p.base, 90*time.Second) {
		t.Fatalf("kefu serve did not become ready in 90 s:\n%s", p.log)
	}
	return p
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *syncWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// crossInstance: a customer on one instance and an agent on another talk to each other. The
// request for a person is made on the customer's instance; the assignment, the agent's reply
// and the customer's next message each cross to the other instance through the broker.
func crossInstance(t *testing.T, customerBase, agentBase string) {
	t.Helper()
	code, body := postJSON(t, agentBase+"/api/agent/login", "", map[string]string{"email": DemoAgentEmail, "password": "demo-password"})
	if code != http.StatusOK {
		t.Fatalf("login = %d %v", code, body)
	}
	agent := rawDial(t, agentBase+"/ws/agent")
	agent.send(map[string]any{"type": "hello", "token": body["token"].(string)})
	agent.expect(t, "the agent's welcome", func(f map[string]any) bool { return f["type"] == "welcome" })

	id, token := newSession(t, customerBase)
	cust := rawDial(t, customerBase+"/ws/customer")
	cust.send(map[string]any{"type": "hello", "session_id": id, "token": token})
	cust.expect(t, "the customer's welcome", func(f map[string]any) bool { return f["type"] == "welcome" })
	chat := func(f map[string]any) map[string]any {
		m, _ := f["message"].(map[string]any)
		if m == nil {
			return map[string]any{}
		}
		return m
	}
	cust.send(map[string]any{"type": "message", "client_id": "x1", "text": "转人工"})
	a := agent.expect(t, "the assignment, on the agent's instance", func(f map[string]any) bool { return f["type"] == "assigned" })
	if got := int64(a["assignment"].(map[string]any)["session_id"].(float64)); got != id {
		t.Fatalf("assigned session %d, want %d", got, id)
	}
	cust.expect(t, "the agent joined, on the customer's instance", func(f map[string]any) bool {
		return f["type"] == "message" && chat(f)["meta"] != nil && chat(f)["meta"].(map[string]any)["event"] == "agent_joined"
	})
	agent.send(map[string]any{"type": "reply", "session_id": id, "client_id": "r1", "text": "您好，我在另一台服务器上"})
	agent.expect(t, "the reply's ack", func(f map[string]any) bool { return f["type"] == "ack" && f["client_id"] == "r1" })
	cust.expect(t, "the agent's reply, on the customer's instance", func(f map[string]any) bool {
		return f["type"] == "message" && chat(f)["role"] == "agent" && chat(f)["text"] == "您好，我在另一台服务器上"
	})
	cust.send(map[string]any{"type": "message", "client_id": "x2", "text": "我的订单到哪了"})
	agent.expect(t, "the customer's message, on the agent's instance", func(f map[string]any) bool {
		return f["type"] == "message" && chat(f)["client_id"] == "x2"
	})
	agent.send(map[string]any{"type": "close", "session_id": id, "disposition": "resolved"})
	cust.expect(t, "the close, on the customer's instance", func(f map[string]any) bool {
		return f["type"] == "message" && chat(f)["meta"] != nil && chat(f)["meta"].(map[string]any)["event"] == "agent_closed"
	})
	agent.conn.Close()
	cust.conn.Close()
}

// warmUp has the instance answer one knowledge question.
func warmUp(t *testing.T, base string) {
	t.Helper()
	c := newFaultCustomer(t, "warm-up", base)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	defer c.drop()
	if !c.ask(ctx, "warm-up", "退款多久到账？") { // a knowledge question: the Chinese dictionary loaded
		t.Fatalf("%s did not answer in 60 s", base)
	}
}

// TestKillOneOfTwoInstances: two `kefu serve` processes on one database. First a customer on
// A and an agent on B talk to each other (frames cross through PostgreSQL LISTEN/NOTIFY).
// Then 40 customers, half on each, talk to the bot, and A is killed with SIGKILL: its
// customers reconnect to B, say hello with the last seq they have in a row, and resend what
// was not acknowledged. No customer misses a message or gets one twice, and every
// acknowledged message is stored once with its reply.
func TestKillOneOfTwoInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two servers")
	}
	t.Parallel()
	pool, url := pgtest.SchemaURL(t)
	a := startServeProcess(t, url) // A seeds the demo data; B finds it
	b := startServeProcess(t, url)

	crossInstance(t, a.base, b.base)
	warmUp(t, b.base) // A answered already: B's first turns would wait for what it loads lazily

	const customers = 40
	cs := make([]*faultCustomer, customers)
	for i := range cs {
		if i%2 == 0 {
			cs[i] = newFaultCustomer(t, fmt.Sprint("a", i), a.base, b.base)
		} else {
			cs[i] = newFaultCustomer(t, fmt.Sprint("b", i), b.base, a.base)
		}
	}
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() { c.run(ctx, 300*time.Millisecond) })
	}
	// Every customer must be answered once first: one still waiting for its first welcome
	// from A when A dies goes to B on its first connection, which is no reconnection.
	waitUntil(t, 30*time.Second, "80 messages acknowledged and every customer answered before the kill", func() bool {
		return totalAcks(cs) >= 80 && allAnswered(cs, time.Time{}, 1)
	})
	before := summarize(cs)
	killed := time.Now()
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = a.cmd.Wait()
	waitUntil(t, 40*time.Second, "every customer answered twice after the kill", func() bool { return allAnswered(cs, killed, 2) })
	r := finish(t.Context(), cs, stop, &wg)
	t.Logf("before the kill: %v", before)
	t.Logf("in all: %v", r)
	for i := 0; i < customers; i += 2 { // those that started on A
		c := cs[i]
		c.mu.Lock()
		if c.connects < 2 || c.at != 1 {
			t.Errorf("%s: %d connections, the last to %s; it should have reconnected to B", c.name, c.connects, c.bases[c.at])
		}
		c.mu.Unlock()
	}
	for code, n := range r.codes {
		if code != "unavailable" && code != "rate_limited" {
			t.Errorf("%d error frames with code %q", n, code)
		}
	}
	verifyDelivery(t, pool, cs)
	if t.Failed() {
		t.Logf("instance B's log:\n%s", b.log)
	}
}

// natsForTest is the test NATS server's URL, as in api's tests: skipped without one outside
// CI, failed in CI.
func natsForTest(t *testing.T) string {
	t.Helper()
	u := os.Getenv("KEFU_TEST_NATS_URL")
	if u == "" {
		u = "nats://127.0.0.1:4222"
	}
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(u, "nats://"), 2*time.Second)
	if err != nil {
		msg := fmt.Sprintf("no NATS server answers at %s (%v): scripts/setup installs and starts one", u, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	c.Close()
	return u
}

// TestCrossInstanceOverNATS: the same conversation across two instances with -broker nats.
func TestCrossInstanceOverNATS(t *testing.T) {
	t.Parallel()
	u := natsForTest(t)
	_, url := pgtest.SchemaURL(t)
	withNATS := func(c *Config) { c.Broker, c.NATSURL = "nats", u }
	a := startMainAt(t, url, withNATS)
	b := startMainAt(t, url, withNATS)
	crossInstance(t, a.URL, b.URL)
}

// TestGracefulShutdownTellsClientsToReconnect: an instance shut down while customers talk to
// it closes their connections with 4001 (reconnect); they resume on the other instance with
// nothing lost and nothing twice.
func TestGracefulShutdownTellsClientsToReconnect(t *testing.T) {
	t.Parallel()
	pool, url := pgtest.SchemaURL(t)
	a := startMainAt(t, url, nil)
	b := startMainAt(t, url, nil)
	const customers = 10
	cs := make([]*faultCustomer, customers)
	for i := range cs {
		cs[i] = newFaultCustomer(t, fmt.Sprint("g", i), a.URL, b.URL)
	}
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() { c.run(ctx, 200*time.Millisecond) })
	}
	waitUntil(t, 30*time.Second, "every customer answered twice", func() bool { return allAnswered(cs, time.Time{}, 2) })
	shutdown := time.Now()
	if err := a.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	t.Logf("instance A shut down in %v", time.Since(shutdown).Round(time.Millisecond))
	waitUntil(t, 30*time.Second, "every customer answered twice after the shutdown", func() bool { return allAnswered(cs, shutdown, 2) })
	r := finish(t.Context(), cs, stop, &wg)
	t.Logf("%v", r)
	if r.closes[4001] != customers {
		t.Errorf("close codes %v; want 4001 (reconnect) for each of the %d customers", r.closes, customers)
	}
	verifyDelivery(t, pool, cs)
}

// TestAbuseDoesNotHurtOthers: garbage, 1 MB frames and a flood of 1,000 frames a second
// get clear errors or a closed connection, while a well-behaved customer on the same
// server keeps getting answers as fast as before. The abusers come from 127.0.0.2, so a
// limit per address does not count them against the customer.
func TestAbuseDoesNotHurtOthers(t *testing.T) {
	t.Parallel()
	testStart := time.Now()
	m := startMain(t)
	good := newFaultCustomer(t, "good", m.URL)
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { good.run(ctx, 200*time.Millisecond) })
	waitUntil(t, 20*time.Second, "a baseline of 10 answers", func() bool { return good.answeredSince(time.Time{}) >= 10 })
	good.mu.Lock()
	baseline := slices.Clone(good.latency)
	good.mu.Unlock()
	abuseStart := time.Now()

	abuser := func(name string) (*faultCustomer, *fconn) {
		c := newFaultCustomer(t, name, m.URL)
		c.local = "127.0.0.2"
		conn, err := dialFrames(c.dialer(), m.URL)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Cleanup(func() { conn.ws.Close() })
		return c, conn
	}
	nextFrame := func(conn *fconn, what string) frameMsg {
		t.Helper()
		select {
		case f, ok := <-conn.frames:
			if !ok {
				t.Fatalf("connection closed waiting for %s: %v", what, conn.err)
			}
			return f
		case <-time.After(10 * time.Second):
			t.Fatalf("timed out waiting for %s", what)
		}
		return frameMsg{}
	}

	var abusers sync.WaitGroup
	// Garbage: each bad frame gets an error frame saying what is wrong; the connection
	// survives and can still be used properly.
	abusers.Go(func() {
		c, conn := abuser("garbage")
		for _, tt := range []struct {
			kind int
			data string
			code string
		}{
			{websocket.TextMessage, "not json", "invalid"},
			{websocket.TextMessage, "\xff\xfe\xfd", "invalid"},
			{websocket.BinaryMessage, "\x00\x01\x02\x03", "invalid"},
			{websocket.TextMessage, `{"type":1}`, "invalid"},
			{websocket.TextMessage, `[]`, "invalid"},
			{websocket.TextMessage, `{"type":"message","text":"hi"}`, "unauthorized"},
			{websocket.TextMessage, `{"type":"nonsense"}`, "invalid"},
		} {
			if err := conn.ws.WriteMessage(tt.kind, []byte(tt.data)); err != nil {
				t.Errorf("garbage %q: %v", tt.data, err)
				return
			}
			f := nextFrame(conn, fmt.Sprintf("the error for %q", tt.data))
			if f.Type != "error" || f.Code != tt.code || len(f.Message) < 3 {
				t.Errorf("garbage %q got %+v, want an error frame with code %s and a message", tt.data, f, tt.code)
			}
		}
		_ = conn.ws.WriteJSON(map[string]any{"type": "hello", "session_id": c.id, "token": c.token})
		if f := nextFrame(conn, "the welcome after garbage"); f.Type != "welcome" {
			t.Errorf("hello after garbage got %+v", f)
		}
	})
	// Oversized: a 1 MB frame closes the connection with 1009 (message too big); a 1 MB
	// request body is refused with 413.
	abusers.Go(func() {
		_, conn := abuser("oversized")
		writeErr := conn.ws.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("大"), 350_000))
		for range conn.frames {
		}
		if !websocket.IsCloseError(conn.err, websocket.CloseMessageTooBig) && writeErr == nil {
			t.Errorf("a 1 MB frame ended the connection with %v, want close 1009", conn.err)
		}
		req, _ := http.NewRequest(http.MethodPost, m.URL+"/api/sessions", strings.NewReader(`{"channel":"`+strings.Repeat("x", 1<<20)+`"}`))
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("1 MB body: %v", err)
			return
		}
		res.Body.Close()
		if res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("a 1 MB body got %d, want 413", res.StatusCode)
		}
	})
	// Flood: 1,000 frames a second for 3 s. The server answers with rate_limited errors or
	// closes the connection; it stores only what the limit lets through.
	var floodSent, floodAcked, floodLimited atomic.Int64
	var floodClose atomic.Value
	var floodSession int64
	abusers.Go(func() {
		c, conn := abuser("flood")
		floodSession = c.id
		_ = conn.ws.WriteJSON(map[string]any{"type": "hello", "session_id": c.id, "token": c.token})
		go func() {
			for f := range conn.frames {
				switch {
				case f.Type == "ack":
					floodAcked.Add(1)
				case f.Type == "error" && f.Code == "rate_limited":
					floodLimited.Add(1)
				}
			}
			floodClose.Store(fmt.Sprint(conn.err))
		}()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
			<-tick.C
			if conn.ws.WriteJSON(map[string]any{"type": "message", "client_id": fmt.Sprint("f", floodSent.Load()), "text": "你好"}) != nil {
				break // closed by the server
			}
			floodSent.Add(1)
		}
	})
	abusers.Wait()
	abuseEnd := time.Now()
	t.Logf("abuse from %v to %v after the start", abuseStart.Sub(testStart).Round(time.Millisecond), abuseEnd.Sub(testStart).Round(time.Millisecond))
	waitUntil(t, 20*time.Second, "5 more answers to the good customer after the abuse", func() bool { return good.answeredSince(abuseEnd) >= 5 })
	stop()
	wg.Wait()

	good.mu.Lock()
	var during []time.Duration // answers that came during the abuse
	for i, at := range good.answeredAt {
		if at.After(abuseStart) && at.Before(abuseEnd) {
			during = append(during, good.latency[i])
		}
	}
	codes := maps.Clone(good.codes)
	good.mu.Unlock()
	t.Logf("good customer: baseline p50 %v max %v; during the abuse (%d answers) p50 %v max %v; error frames %v",
		faultQuantile(baseline, 0.5).Round(time.Millisecond), faultQuantile(baseline, 1).Round(time.Millisecond), len(during),
		faultQuantile(during, 0.5).Round(time.Millisecond), faultQuantile(during, 1).Round(time.Millisecond), codes)
	t.Logf("flood: %d frames sent in 3 s, %d acknowledged, %d rate_limited errors, connection ended: %v",
		floodSent.Load(), floodAcked.Load(), floodLimited.Load(), floodClose.Load())
	if len(codes) > 0 {
		t.Errorf("the good customer got error frames %v", codes)
	}
	if len(during) < 5 {
		t.Errorf("the good customer got %d answers in the %v of abuse", len(during), abuseEnd.Sub(abuseStart).Round(time.Millisecond))
	}
	if limit := max(3*faultQuantile(baseline, 0.5), faultQuantile(baseline, 0.5)+500*time.Millisecond); faultQuantile(during, 0.5) > limit {
		t.Errorf("the good customer's median reply took %v during the abuse, against %v before (limit %v)",
			faultQuantile(during, 0.5), faultQuantile(baseline, 0.5), limit)
	}
	if floodLimited.Load() == 0 && floodClose.Load() == nil {
		t.Error("the flood was neither rate limited nor closed")
	}
	var stored int64
	if err := m.pool.QueryRow(t.Context(), "SELECT count(*) FROM dialog_message WHERE session_id = $1 AND role = 'customer'", floodSession).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if sent := floodSent.Load(); stored > sent/10 {
		t.Errorf("the flood of %d frames stored %d messages: the limit let too many through", sent, stored)
	}
}

// cutProxy forwards TCP connections to a server and can cut them all and refuse new ones
// for a while: a network that fails under a browser.
type cutProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	refuse time.Time
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); p.cut(0) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
	return p
}

func (p *cutProxy) forward(c net.Conn) {
	p.mu.Lock()
	refusing := time.Now().Before(p.refuse)
	p.mu.Unlock()
	if refusing {
		c.Close()
		return
	}
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[s] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(s, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, s); done <- struct{}{} }()
	<-done
	c.Close()
	s.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, s)
	p.mu.Unlock()
}

// cut closes every connection and refuses new ones for d.
func (p *cutProxy) cut(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = time.Now().Add(d)
	for c := range p.conns {
		c.Close()
	}
}

// TestWidgetReconnectsInBrowser: the network under the chat widget fails for 4 s. The widget
// says it is reconnecting, keeps a message typed meanwhile, reconnects with backoff, says so,
// and the message is answered once (api/webtest/reconnect.mjs).
func TestWidgetReconnectsInBrowser(t *testing.T) {
	t.Parallel()
	shots := needBrowser(t)
	m := startMain(t)
	proxy := newCutProxy(t, strings.TrimPrefix(m.URL, "http://"))
	control := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("for"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		proxy.cut(d)
		w.WriteHeader(http.StatusNoContent)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go control.Serve(ln) //nolint:errcheck // closed below
	t.Cleanup(func() { control.Close() })
	cmd := exec.CommandContext(t.Context(), "node", "../../api/webtest/reconnect.mjs", "http://"+proxy.ln.Addr().String(),
		"http://"+ln.Addr().String(), shots)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("browser walk failed: %v", err)
	}
}
