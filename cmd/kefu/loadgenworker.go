package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// loadWorker holds one share of kefu loadgen's connections, in the process of the command
// or in a worker process of its own. Each connection has one goroutine, its reader; one
// opener paces the connections in, one sender paces every message out, and one sweeper
// times replies out. What the worker counts goes to report as a loadStats snapshot.
type loadWorker struct {
	spec  loadSpec
	dial  loadDialer
	start time.Time // the clock of sentAt: nanoseconds since start
	base  int64     // RSS before any connection

	conns  []*loadConn // by index in this worker; nil until opened
	active []*loadConn // the connections that send messages, in the order they opened
	mu     sync.Mutex  // guards active and errors
	errors map[string]int64

	established, failed, open atomic.Int64
	sent, replied, skipped    atomic.Int64
	toAgents, agentReplied    atomic.Int64 // of sent and replied: the messages to a person and their replies
	warmSent, warmReplied     atomic.Int64 // during the warm-up
	measureFrom               atomic.Int64 // worker clock: messages sent before are the warm-up's
	latency, opening          loadHist
	agentLatency              loadHist    // a person's replies (latency is the bot's)
	closing                   atomic.Bool // the worker is closing its connections: reads that end are no errors
	readers                   sync.WaitGroup

	texts [][]byte // each utterance as a JSON string
	bufs  sync.Pool
}

// loadSpec is one worker's share of the run; the command hands it to a worker process as
// JSON.
type loadSpec struct {
	Worker       int           `json:"worker"`
	Conns        int           `json:"conns"` // this worker's connections…
	First        int           `json:"first"` // …numbered from First in the whole run
	Targets      []string      `json:"targets"`
	Sources      int           `json:"sources"` // source addresses 127.0.0.1…127.0.0.Sources
	Active       float64       `json:"active"`
	Handoff      float64       `json:"handoff,omitempty"` // of the active connections: those that talk to a person
	Agents       bool          `json:"agents,omitempty"`  // agents answer: a customer the bot escalates talks to one
	Rate         float64       `json:"rate"`              // this worker's messages per second
	Poisson      bool          `json:"poisson"`
	Ramp         float64       `json:"ramp"` // this worker's connections per second
	Concurrency  int           `json:"concurrency"`
	ReplyTimeout time.Duration `json:"reply_timeout"`
	Duration     time.Duration `json:"duration"`
	Warmup       time.Duration `json:"warmup"`             // sending before Duration, left out of the figures
	Bare         string        `json:"bare,omitempty"`     // a path to open plain WebSockets on, without sessions
	Compress     bool          `json:"compress,omitempty"` // offer permessage-deflate, as browsers do
	Utterances   []string      `json:"utterances"`
}

// loadDialer opens the worker's connections: over TCP from a source address, or in memory.
type loadDialer interface {
	http() *http.Client
	base(target string) string // the URL requests go to
	// connect opens a WebSocket to url from the source address numbered source and sets
	// c.t. The frames it receives go to w.handle, and its end to w.ended (exactly once),
	// from a reader goroutine or from the connection's own callbacks.
	connect(ctx context.Context, w *loadWorker, c *loadConn, source int, url string) error
}

// loadTransport is a connection's way out.
type loadTransport interface {
	write(frame []byte) error // one text frame; the callers take turns (loadConn.wmu)
	close(graceful bool)      // graceful: a close frame first, as a customer leaving
}

// tcpDialer dials targets from 127.0.0.1…127.0.0.k: each source address has the whole
// ephemeral port range to itself, so k sources hold k times as many connections to a target.
// Each connection has a reader goroutine.
type tcpDialer struct {
	client  *http.Client
	dialers []*websocket.Dialer
}

func newTCPDialer(spec loadSpec) *tcpDialer {
	sources, concurrency := spec.Sources, spec.Concurrency
	pool := &sync.Pool{}
	d := &tcpDialer{client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: concurrency, IdleConnTimeout: 30 * time.Second,
	}}}
	for i := range max(sources, 1) {
		nd := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i))}}
		d.dialers = append(d.dialers, &websocket.Dialer{NetDialContext: nd.DialContext, HandshakeTimeout: 10 * time.Second,
			ReadBufferSize: loadReadBuffer, WriteBufferSize: loadWriteBuffer, WriteBufferPool: pool,
			EnableCompression: spec.Compress})
	}
	return d
}

func (d *tcpDialer) connect(ctx context.Context, w *loadWorker, c *loadConn, source int, url string) error {
	ws, resp, err := d.dialers[source%len(d.dialers)].DialContext(ctx, url, nil)
	if err != nil {
		if resp != nil {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return errors.New(netErrorKind(err))
	}
	c.t = wsTransport{ws}
	w.readers.Go(func() { w.read(c, ws) })
	return nil
}

// wsTransport is a gorilla/websocket connection.
type wsTransport struct{ ws *websocket.Conn }

func (t wsTransport) write(frame []byte) error {
	_ = t.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return t.ws.WriteMessage(websocket.TextMessage, frame)
}

func (t wsTransport) close(graceful bool) {
	if graceful {
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
		_ = t.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	}
	t.ws.Close() // the reader ends
}

func (d *tcpDialer) http() *http.Client        { return d.client }
func (d *tcpDialer) base(target string) string { return target }

// source is the source address connection i of the worker connects from, target its server.
func (s loadSpec) source(i int) int    { return (s.First + i) % max(s.Sources, 1) }
func (s loadSpec) target(i int) string { return s.Targets[(s.First+i)%len(s.Targets)] }

// isActive reports whether connection i sends messages: the active fraction spread evenly.
func (s loadSpec) isActive(i int) bool {
	g := float64(s.First + i)
	return math.Floor((g+1)*s.Active) > math.Floor(g*s.Active)
}

func (w *loadWorker) now() int64                    { return int64(time.Since(w.start)) }
func (w *loadWorker) sinceNs(t int64) time.Duration { return time.Duration(w.now() - t) }
func (w *loadWorker) countError(kind string)        { w.mu.Lock(); w.errors[kind]++; w.mu.Unlock() }
func wsURL(base, path string) string                { return "ws" + strings.TrimPrefix(base, "http") + path }

// A client connection's buffers: frames from the server are read through a small buffer
// (a larger frame takes several reads), and writes borrow a pooled buffer.
const (
	loadReadBuffer  = 1024
	loadWriteBuffer = 1024
)

// loadConn is one customer's connection.
type loadConn struct {
	t        loadTransport
	wmu      sync.Mutex    // one writer at a time: the sender, or the reader leaving the queue
	welcomed chan struct{} // closed by the reader at the welcome (or when the connection ends first)

	mu      sync.Mutex
	state   uint8
	welcome bool
	// The message waiting for its reply (pending), its client id and when it went out
	// (worker clock), the seq the ack gave it, and a bot message that came before the ack.
	pending           bool
	clientID          string
	sentAt            int64
	ackSeq            int64
	earlySeq, earlyAt int64
	warm              bool // sent during the warm-up
	n                 int  // messages sent
	// A customer who talks to a person (person) asks for one with its first message (asked),
	// waits in the queue, then talks to the agent: the reply to a message sent to the agent
	// (toAgent) is the agent's message.
	person, asked, toAgent bool
}

const (
	connReady uint8 = iota // the bot has the conversation: messages may go
	connAway               // queued for a person (or, for a customer who wants the bot, talking to one): nobody will reply
	connAgent              // a person has the conversation and answers (customers who asked for one)
	connDead
)

// loadAskForPerson is what a customer who wants a person says first.
var loadAskForPerson = [][]byte{[]byte(`"转人工"`), []byte(`"I want to talk to a human"`)}

func newLoadWorker(spec loadSpec, dial loadDialer) *loadWorker {
	w := &loadWorker{spec: spec, dial: dial, start: time.Now(), conns: make([]*loadConn, spec.Conns), errors: map[string]int64{}}
	w.latency.init()
	w.agentLatency.init()
	w.opening.init()
	for _, u := range spec.Utterances {
		b, _ := json.Marshal(u)
		w.texts = append(w.texts, b)
	}
	w.bufs.New = func() any { return new(bytes.Buffer) }
	w.base = selfRSS()
	return w
}

// run opens the connections, then follows the commands: "go" sends messages for the
// spec's duration, "quit" closes everything. It reports a snapshot every second and at
// each change of phase, the last one with phase "done".
func (w *loadWorker) run(ctx context.Context, cmds <-chan string, report func(loadStats)) {
	var phase atomic.Value
	phase.Store("opening")
	stop := make(chan struct{})
	var ticker sync.WaitGroup
	ticker.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				report(w.stats(phase.Load().(string)))
			}
		}
	})
	finish := func() {
		close(stop)
		ticker.Wait()
		held := loadHeld{Open: w.open.Load(), RSS: selfRSS(), Goroutines: runtime.NumGoroutine()}
		w.closeAll()
		s := w.stats("done")
		s.Held = held
		report(s)
	}
	// "quit" (or the end of the commands, or ctx) stops whatever is under way.
	ctx, quit := context.WithCancel(ctx)
	defer quit()
	start := make(chan struct{}, 1)
	go func() {
		defer quit()
		for cmd := range cmds {
			switch cmd {
			case "go":
				start <- struct{}{}
			case "quit":
				return
			}
		}
	}()
	w.openAll(ctx)
	phase.Store("opened")
	report(w.stats("opened"))
	for {
		select {
		case <-start:
			phase.Store("sending")
			w.send(ctx)
			phase.Store("sent")
			report(w.stats("sent"))
		case <-ctx.Done():
			finish()
			return
		}
	}
}

// openAll opens the worker's connections at the spec's ramp, Concurrency at a time.
func (w *loadWorker) openAll(ctx context.Context) {
	sem := make(chan struct{}, max(w.spec.Concurrency, 1))
	var wg sync.WaitGroup
	begin := time.Now()
	for i := range w.spec.Conns {
		if w.spec.Ramp > 0 {
			at := begin.Add(time.Duration(float64(i) / w.spec.Ramp * float64(time.Second)))
			if d := time.Until(at); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
				}
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			w.openOne(ctx, i)
		})
	}
	wg.Wait()
	w.mu.Lock()
	for i, c := range w.conns {
		if c != nil && w.spec.isActive(i) {
			k := float64(len(w.active))
			c.mu.Lock() // its reader runs already
			c.person = math.Floor((k+1)*w.spec.Handoff) > math.Floor(k*w.spec.Handoff)
			c.mu.Unlock()
			w.active = append(w.active, c)
		}
	}
	w.mu.Unlock()
}

// openOne creates a session, connects and says hello, and waits for the welcome.
func (w *loadWorker) openOne(ctx context.Context, i int) {
	t0 := w.now()
	target := w.dial.base(w.spec.target(i))
	src := w.spec.source(i)
	path := "/ws/customer"
	var sess struct {
		ID    int64  `json:"session_id"`
		Token string `json:"token"`
	}
	if w.spec.Bare != "" {
		path = w.spec.Bare
	} else if kind := w.createSession(ctx, target, &sess); kind != "" {
		w.fail(kind)
		return
	}
	welcomed := make(chan struct{})
	c := &loadConn{welcomed: welcomed}
	if err := w.dial.connect(ctx, w, c, src, wsURL(target, path)); err != nil {
		w.fail("dial: " + err.Error())
		return
	}
	w.open.Add(1)
	if w.spec.Bare != "" { // nothing to wait for
		c.mu.Lock()
		if c.welcomed != nil {
			c.welcome, c.welcomed = true, nil
			close(welcomed)
		}
		c.mu.Unlock()
	}
	if w.spec.Bare == "" {
		hello := fmt.Appendf(nil, `{"type":"hello","session_id":%d,"token":%q}`, sess.ID, sess.Token)
		if err := c.write(hello); err != nil {
			c.t.close(false)
			<-welcomed
			w.fail("hello: " + netErrorKind(err))
			return
		}
	}
	select {
	case <-welcomed:
	case <-time.After(30 * time.Second):
		c.t.close(false)
		<-welcomed // closed as the connection ends
	}
	c.mu.Lock()
	ok := c.welcome && c.state != connDead
	c.mu.Unlock()
	if !ok {
		w.fail("no welcome")
		return
	}
	w.conns[i] = c
	w.established.Add(1)
	w.opening.record(w.sinceNs(t0))
}

func (w *loadWorker) fail(kind string) {
	w.failed.Add(1)
	w.countError("open: " + kind)
}

func (w *loadWorker) createSession(ctx context.Context, base string, out any) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/sessions", strings.NewReader(`{"channel":"web"}`))
	if err != nil {
		return "session: " + err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.dial.http().Do(req)
	if err != nil {
		return "session: " + netErrorKind(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		_, _ = io.Copy(io.Discard, resp.Body)
		return "session: HTTP " + strconv.Itoa(resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return "session: bad body"
	}
	return ""
}

// netErrorKind names an error for the error counts, without addresses or ports.
func netErrorKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no free port (EADDRNOTAVAIL)"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too many open files"
	case errors.Is(err, websocket.ErrBadHandshake):
		return "bad handshake"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Op + " error"
	}
	return "other"
}

// write sends one text frame.
func (c *loadConn) write(frame []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.t.write(frame)
}

// loadFrame is what the reader needs of a server frame.
type loadFrame struct {
	Type     string          `json:"type"`
	ClientID string          `json:"client_id"`
	Seq      int64           `json:"seq"`
	Code     string          `json:"code"`
	State    string          `json:"state"`
	Message  json.RawMessage `json:"message"` // a chat message, or an error frame's text
}

type loadMessage struct {
	Role string `json:"role"`
	Seq  int64  `json:"seq"`
	Meta struct {
		Event string `json:"event"`
	} `json:"meta"`
}

// read is the connection's only goroutine: it reads frames (gorilla answers the server's
// pings as it reads) until the connection ends, and matches replies to the message waiting.
//
// A bot reply is matched to the message it answers by seq: the server handles one
// connection's frames in order and a session's turns one at a time, acknowledging the
// customer's message with its seq before publishing the replies, whose seqs follow it (the
// bot's messages carry no client id). So the reply to the message waiting is the first bot
// message with a seq above its ack's, or a delta carrying its client id, whichever comes first.
func (w *loadWorker) read(c *loadConn, ws *websocket.Conn) {
	for {
		_, r, err := ws.NextReader()
		if err != nil {
			w.ended(c, err)
			return
		}
		buf := w.bufs.Get().(*bytes.Buffer)
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			w.bufs.Put(buf)
			w.ended(c, err)
			return
		}
		w.handle(c, buf.Bytes())
		if buf.Cap() <= 64<<10 {
			w.bufs.Put(buf)
		}
	}
}

// ended is told, once, that c's connection has ended, and why.
func (w *loadWorker) ended(c *loadConn, why error) {
	c.mu.Lock()
	c.state = connDead
	if c.pending {
		c.pending = false
		if !w.closing.Load() {
			w.countError("unanswered: connection ended")
		}
	}
	welcomed := c.welcomed
	c.welcomed = nil
	c.mu.Unlock()
	if welcomed != nil {
		close(welcomed)
	}
	w.open.Add(-1)
	c.t.close(false)
	if w.closing.Load() {
		return
	}
	var ce *websocket.CloseError
	if errors.As(why, &ce) {
		w.countError(fmt.Sprintf("closed by server: %d %s", ce.Code, ce.Text))
	} else {
		w.countError("connection lost: " + netErrorKind(why))
	}
}

func (w *loadWorker) handle(c *loadConn, data []byte) {
	var f loadFrame
	if err := json.Unmarshal(data, &f); err != nil {
		w.countError("bad frame")
		return
	}
	now := w.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch f.Type {
	case "welcome":
		c.welcome = true
		if c.welcomed != nil {
			close(c.welcomed) // openOne waits for this
			c.welcomed = nil
		}
	case "ack":
		if c.pending && f.ClientID == c.clientID {
			c.ackSeq = f.Seq
			if c.earlySeq > f.Seq {
				w.answered(c, c.earlyAt)
			}
		}
	case "delta":
		if c.pending && f.ClientID == c.clientID {
			w.answered(c, now)
		}
	case "message":
		var m loadMessage
		if json.Unmarshal(f.Message, &m) != nil {
			return
		}
		if m.Role == "bot" && m.Meta.Event == "escalated" {
			c.state = connAway // the state frame that follows says so too
			switch {
			case c.person:
			case w.spec.Agents: // the bot brought a person in: talk to them rather than leave a queue they may have answered
				c.person, c.asked = true, true
			default:
				w.countError("escalated to a person (left the queue)")
			}
		}
		// The reply to a message sent to a person is theirs; to any other, the bot's.
		replier := "bot"
		if c.toAgent {
			replier = "agent"
		}
		if !c.pending || m.Role != replier {
			return
		}
		if c.ackSeq > 0 && m.Seq > c.ackSeq {
			w.answered(c, now)
		} else if c.ackSeq == 0 && c.earlySeq == 0 {
			c.earlySeq, c.earlyAt = m.Seq, now
		}
	case "state":
		switch f.State {
		case "bot", "closed": // a closed conversation opens again at the next message
			c.state = connReady
		case "queued", "agent":
			if c.person && c.state != connDead {
				c.state = connAway
				if f.State == "agent" {
					c.state = connAgent
				}
				return
			}
			// The bot does not answer a customer waiting for a person: leave the queue (the
			// bot takes the conversation back) rather than keep a connection that cannot be
			// measured. The write waits for the sender's, if any.
			if c.state != connDead {
				c.state = connAway
				go func() { _ = c.write([]byte(`{"type":"leave_queue"}`)) }()
			}
		}
	case "error":
		code := f.Code
		if code == "" {
			code = "unknown"
		}
		w.countError("error frame: " + code)
		// An error for the message waiting (with its client id, or one that came before its
		// ack, as a rate limit does) means no reply will come.
		if c.pending && (f.ClientID == c.clientID || (f.ClientID == "" && c.ackSeq == 0)) {
			c.pending = false
		}
	}
}

// answered records the reply to c's message waiting (under c.mu); at is on the worker clock.
func (w *loadWorker) answered(c *loadConn, at int64) {
	c.pending = false
	if c.warm {
		w.warmReplied.Add(1)
		return
	}
	w.replied.Add(1)
	if c.toAgent {
		w.agentLatency.record(time.Duration(at - c.sentAt))
		w.agentReplied.Add(1)
		return
	}
	w.latency.record(time.Duration(at - c.sentAt))
}

// send sends the worker's share of the messages for the spec's duration, paced evenly or as
// a Poisson process, each to the next active connection that is not waiting for a reply
// (one message at a time per customer, as a person types). A message that finds every
// active connection waiting is counted as skipped: the server is not keeping up. After the
// duration it waits up to the reply timeout for the last replies.
func (w *loadWorker) send(ctx context.Context) {
	if w.spec.Rate <= 0 || w.spec.Duration <= 0 {
		return
	}
	w.mu.Lock()
	active := w.active
	w.mu.Unlock()
	sweepDone := make(chan struct{})
	var sweeper sync.WaitGroup
	sweeper.Go(func() { w.sweep(active, sweepDone) })
	defer func() { close(sweepDone); sweeper.Wait() }()
	if len(active) == 0 {
		w.countError("no active connections")
		return
	}
	rng := rand.New(rand.NewPCG(uint64(w.spec.Worker)+1, uint64(time.Now().UnixNano())))
	begin := time.Now()
	end := begin.Add(w.spec.Warmup + w.spec.Duration)
	w.measureFrom.Store(w.now() + int64(w.spec.Warmup))
	next := begin
	cursor := 0
	interval := float64(time.Second) / w.spec.Rate
	for {
		if w.spec.Poisson {
			next = next.Add(time.Duration(rng.ExpFloat64() * interval))
		} else {
			next = next.Add(time.Duration(interval))
		}
		if !next.Before(end) {
			break
		}
		if d := time.Until(next); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return
			}
		} else if -d > time.Second {
			// More than a second behind (the machine is overloaded): drop what is overdue
			// rather than send it in a burst.
			missed := int64(-d / time.Duration(interval))
			w.skip(missed)
			next = next.Add(time.Duration(float64(missed) * interval))
			continue
		}
		sent := false
		for range len(active) {
			c := active[cursor]
			cursor = (cursor + 1) % len(active)
			if w.sendOne(c, rng) {
				sent = true
				break
			}
		}
		if !sent {
			w.skip(1)
		}
	}
	// The last replies, or the sweeper's verdict on them.
	deadline := time.Now().Add(w.spec.ReplyTimeout + time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		waiting := false
		for _, c := range active {
			c.mu.Lock()
			waiting = waiting || c.pending
			c.mu.Unlock()
			if waiting {
				break
			}
		}
		if !waiting {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// skip counts messages not sent, after the warm-up.
func (w *loadWorker) skip(n int64) {
	if w.now() >= w.measureFrom.Load() {
		w.skipped.Add(n)
	}
}

// sendOne sends a message on c if it is free.
func (w *loadWorker) sendOne(c *loadConn, rng *rand.Rand) bool {
	c.mu.Lock()
	if c.pending || (c.state != connReady && c.state != connAgent) {
		c.mu.Unlock()
		return false
	}
	c.n++
	c.clientID = "lg" + strconv.Itoa(w.spec.Worker) + "-" + strconv.FormatUint(rng.Uint64(), 36) + "-" + strconv.Itoa(c.n)
	c.pending, c.ackSeq, c.earlySeq, c.earlyAt = true, 0, 0, 0
	c.toAgent = c.state == connAgent
	text := w.texts[rng.IntN(len(w.texts))]
	if c.person && !c.asked {
		c.asked, text = true, loadAskForPerson[c.n%len(loadAskForPerson)]
	}
	frame := make([]byte, 0, 64+len(c.clientID)+len(text))
	frame = append(frame, `{"type":"message","client_id":"`...)
	frame = append(frame, c.clientID...)
	frame = append(frame, `","text":`...)
	frame = append(frame, text...)
	frame = append(frame, '}')
	c.sentAt = w.now()
	c.warm = c.sentAt < w.measureFrom.Load()
	warm, toAgent := c.warm, c.toAgent
	c.mu.Unlock()
	if warm {
		w.warmSent.Add(1)
	} else {
		w.sent.Add(1)
		if toAgent {
			w.toAgents.Add(1)
		}
	}
	if err := c.write(frame); err != nil {
		c.mu.Lock()
		c.pending = false
		c.mu.Unlock()
		w.countError("write: " + netErrorKind(err))
		c.t.close(false)
	}
	return true
}

// sweep gives up on replies that took longer than the reply timeout.
func (w *loadWorker) sweep(active []*loadConn, done <-chan struct{}) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	limit := int64(w.spec.ReplyTimeout)
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		now := w.now()
		for _, c := range active {
			c.mu.Lock()
			if c.pending && now-c.sentAt > limit {
				c.pending = false
				if c.toAgent {
					w.countError("unanswered by the agent: reply timeout")
				} else {
					w.countError("unanswered: reply timeout")
				}
			}
			c.mu.Unlock()
		}
	}
}

// closeAll closes every connection, as customers leaving, and waits for the readers.
func (w *loadWorker) closeAll() {
	w.closing.Store(true)
	for _, c := range w.conns {
		if c != nil {
			c.t.close(true)
		}
	}
	w.readers.Wait()
}

// stats is a snapshot of the worker's counts.
func (w *loadWorker) stats(phase string) loadStats {
	s := loadStats{Worker: w.spec.Worker, Phase: phase, Established: w.established.Load(), Failed: w.failed.Load(),
		Open: w.open.Load(), Sent: w.sent.Load(), Replied: w.replied.Load(), Skipped: w.skipped.Load(),
		ToAgents: w.toAgents.Load(), AgentReplied: w.agentReplied.Load(), AgentLatency: w.agentLatency.snapshot(),
		WarmSent: w.warmSent.Load(), WarmReplied: w.warmReplied.Load(),
		Latency: w.latency.snapshot(), Opening: w.opening.snapshot(), RSS: selfRSS(), Goroutines: runtime.NumGoroutine(), BaseRSS: w.base}
	w.mu.Lock()
	s.Errors = make(map[string]int64, len(w.errors))
	for k, v := range w.errors {
		s.Errors[k] = v
	}
	w.mu.Unlock()
	return s
}

// loadStats is a worker's counts so far, as it reports them.
type loadStats struct {
	Worker       int              `json:"worker"`
	Phase        string           `json:"phase"` // opening, opened, sending, sent, done
	Established  int64            `json:"established"`
	Failed       int64            `json:"failed"`
	Open         int64            `json:"open"`
	Sent         int64            `json:"sent"`
	Replied      int64            `json:"replied"`
	Skipped      int64            `json:"skipped"`
	ToAgents     int64            `json:"to_agents,omitempty"`
	AgentReplied int64            `json:"agent_replied,omitempty"`
	AgentLatency histSnapshot     `json:"agent_latency"`
	WarmSent     int64            `json:"warm_sent"`
	WarmReplied  int64            `json:"warm_replied"`
	Errors       map[string]int64 `json:"errors"`
	Latency      histSnapshot     `json:"latency"`
	Opening      histSnapshot     `json:"opening"`
	RSS          int64            `json:"rss_bytes"`
	Goroutines   int              `json:"goroutines"`
	Held         loadHeld         `json:"held"`     // in the last snapshot: before the connections closed
	BaseRSS      int64            `json:"base_rss"` // before any connection
}

// loadHeld is a worker as it was when told to quit, its connections still open.
type loadHeld struct {
	Open       int64 `json:"open"`
	RSS        int64 `json:"rss_bytes"`
	Goroutines int   `json:"goroutines"`
}

// loadHist is a latency histogram on a log scale: bucket i counts latencies of about
// histBase^i microseconds, so a percentile read from it is within 1% of the true one.
// Snapshots from several workers add up.
type loadHist struct {
	counts []atomic.Uint64
	max    atomic.Int64 // ns
}

const (
	histBase    = 1.02
	histBuckets = 1100 // histBase^1100 µs ≈ 2.8 × 10⁹ µs: any latency we can see
)

func (h *loadHist) init() { h.counts = make([]atomic.Uint64, histBuckets) }

func (h *loadHist) record(d time.Duration) {
	us := max(float64(d)/1e3, 1)
	i := min(int(math.Log(us)/math.Log(histBase)+0.5), histBuckets-1)
	h.counts[i].Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// histSnapshot is a histogram's non-empty buckets, as bucket → count.
type histSnapshot struct {
	Buckets map[int]uint64 `json:"buckets"`
	MaxNs   int64          `json:"max_ns"`
}

func (h *loadHist) snapshot() histSnapshot {
	s := histSnapshot{Buckets: map[int]uint64{}, MaxNs: h.max.Load()}
	for i := range h.counts {
		if n := h.counts[i].Load(); n > 0 {
			s.Buckets[i] = n
		}
	}
	return s
}

// add adds o into s.
func (s *histSnapshot) add(o histSnapshot) {
	if s.Buckets == nil {
		s.Buckets = map[int]uint64{}
	}
	for i, n := range o.Buckets {
		s.Buckets[i] += n
	}
	s.MaxNs = max(s.MaxNs, o.MaxNs)
}

func (s histSnapshot) count() uint64 {
	var n uint64
	for _, c := range s.Buckets {
		n += c
	}
	return n
}

// quantile is the latency below which a fraction q of the samples fall, in milliseconds
// (0 without samples); q = 1 is the exact maximum.
func (s histSnapshot) quantile(q float64) float64 {
	total := s.count()
	if total == 0 {
		return 0
	}
	if q >= 1 {
		return round4(float64(s.MaxNs) / 1e6)
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i := range histBuckets {
		seen += s.Buckets[i]
		if seen >= max(rank, 1) {
			ms := math.Pow(histBase, float64(i)) / 1e3
			return round4(min(ms, float64(s.MaxNs)/1e6))
		}
	}
	return round4(float64(s.MaxNs) / 1e6)
}

// selfRSS is this process's resident memory in bytes (VmRSS), 0 where /proc is missing.
func selfRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
