package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/kefu-dev/kefu"
)

const (
	maxFrame   = 64 << 10 // bytes; gorilla answers a larger frame with close 1009
	sendQueue  = 64       // frames queued per connection before it counts as slow
	writeWait  = 10 * time.Second
	pongWait   = 60 * time.Second // silence that closes a connection (keepalive)
	pingEvery  = pongWait / 2     // a dead peer is closed 60–90 s after it last spoke
	helloWait  = 15 * time.Second
	frameRate  = 5  // frames per second a connection may send on average…
	frameBurst = 20 // …and in a burst
	// readBuffer is gorilla's read buffer, which every connection keeps for its life; frames
	// larger than it are read in several pieces. Write buffers of writeBuffer bytes come from
	// the upgrader's pool and are held only while a frame is written.
	readBuffer  = 1 << 10
	writeBuffer = 4 << 10
	// compressMin is the smallest frame compressed when the client negotiated
	// permessage-deflate: below it deflate saves a few bytes and costs a compressor.
	compressMin = 512
)

// closeReason is a WebSocket close code and text. Codes 4000–4499 tell the client to
// reconnect; 4500–4999 tell it not to.
type closeReason struct {
	code int
	text string
}

var (
	closeGone     = closeReason{websocket.CloseNormalClosure, ""}
	closeShutdown = closeReason{4001, "server shutting down: reconnect"}
	closeSlow     = closeReason{4008, "too slow: reconnect and resume"}
	closeNoHello  = closeReason{4501, "no hello"}
)

// label names a close reason in metrics.
func (r closeReason) label() string {
	switch r {
	case closeGone:
		return "gone"
	case closeShutdown:
		return "shutdown"
	case closeSlow:
		return "slow"
	case closeNoHello:
		return "no_hello"
	}
	return fmt.Sprint(r.code)
}

// conn is one WebSocket connection: readLoop alone reads; frames to send wait in a bounded
// queue, and a full queue closes this connection, never blocking the sender. A writer
// goroutine runs only while there is something to write (frames, or the close), one at a
// time; pings come from the server's keepalive. So an idle connection holds one goroutine with a small
// stack (the read loop), gorilla's read buffer (readBuffer) and no queue: a frame is read and
// handled on a goroutine of its own (handleApart), and write buffers are pooled.
type conn struct {
	ws     *websocket.Conn
	done   chan struct{} // closed by shut
	once   sync.Once
	reason closeReason // set once, before done closes
	limit  *rate.Limiter

	ka     *keepalive   // pings the connection once it runs; nil: no pings
	seen   atomic.Int64 // when the client last sent a frame or a pong (keepalive.now)
	kaSlot int          // where ka holds the connection (-1: not held); ka.mu guards them
	kaIdx  int

	mu      sync.Mutex
	queue   [][]byte // frames waiting for the writer; nil while there are none
	live    bool     // run was called: a writer may start
	writing bool     // a writer runs (for good once the connection is closing)

	// Set by Server.upgrade; nil in tests that build a bare conn.
	stats   *connStats   // this kind of connection's counters
	flight  *flight      // the server's frames in progress, which Drain waits for
	log     *slog.Logger // for a frame whose handling panicked
	release func()       // frees the client address's connection slot (ipTable)
	relOnce sync.Once
}

func newConn(ws *websocket.Conn, ka *keepalive) *conn {
	return &conn{ws: ws, done: make(chan struct{}), limit: rate.NewLimiter(frameRate, frameBurst), ka: ka, kaSlot: -1}
}

// run lets the connection write: what was queued before goes now, and pings start.
func (c *conn) run() {
	c.mu.Lock()
	c.live = true
	if c.ka != nil && !c.closing() { // shut closes done before it takes c.mu: it removes what this adds
		c.ka.add(c)
	}
	c.wake()
	c.mu.Unlock()
}

// heard notes that the client is there.
func (c *conn) heard() {
	if c.ka != nil {
		c.seen.Store(c.ka.now())
	}
}

// wake starts the writer if there is work for it and none runs. c.mu is held.
func (c *conn) wake() {
	if c.live && !c.writing && (len(c.queue) > 0 || c.closing()) {
		c.writing = true
		go c.writer()
	}
}

// pingNow sends a ping (WriteControl may be called alongside the writer).
func (c *conn) pingNow() {
	if c.closing() {
		return
	}
	if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
		c.shut(closeGone)
	}
}

func (c *conn) shut(r closeReason) {
	c.once.Do(func() {
		c.reason = r
		close(c.done)
		c.stats.closed(r)
		c.mu.Lock()
		if c.ka != nil {
			c.ka.remove(c)
		}
		c.wake() // the writer flushes what is queued and says goodbye
		c.mu.Unlock()
	})
}

// closing reports whether the connection is being closed.
func (c *conn) closing() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// queued is how many frames wait to be written.
func (c *conn) queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// Enqueue queues a frame; a connection that cannot keep up is closed with 4008 and resumes
// from its last seq when it reconnects.
func (c *conn) Enqueue(frame []byte) bool {
	c.mu.Lock()
	if c.closing() { // the writer's last pass may have been: nothing would send it
		c.mu.Unlock()
		return false
	}
	if len(c.queue) >= sendQueue {
		c.mu.Unlock()
		c.shut(closeSlow)
		return false
	}
	c.queue = append(c.queue, frame)
	c.wake()
	c.mu.Unlock()
	return true
}

// writer writes what is queued, and ends when the queue is empty; once the connection is
// closing it flushes the queue, sends the close frame and closes the socket, which ends the
// read loop.
func (c *conn) writer() {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.queue = nil // an idle connection keeps no queue
			if !c.closing() {
				c.writing = false
				c.mu.Unlock()
				return
			}
			c.mu.Unlock()
			msg := websocket.FormatCloseMessage(c.reason.code, c.reason.text)
			_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(writeWait))
			_ = c.ws.Close()
			return // writing stays true: nothing is written after the close
		}
		frame := c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		c.mu.Unlock()
		if err := c.write(frame); err != nil {
			c.shut(closeGone)
			_ = c.ws.Close()
			return
		}
	}
}

func (c *conn) sendJSON(v any) {
	b, err := json.Marshal(v)
	if err == nil {
		c.Enqueue(b)
	}
}

func (c *conn) sendError(err error, extra map[string]any) {
	b := describe(err)
	f := map[string]any{"type": "error", "code": b.Code, "message": b.Message}
	for k, v := range extra {
		f[k] = v
	}
	c.sendJSON(f)
}

// readLoop reads frames until the connection ends, handing each to handle. A frame handle
// fails is answered with an error frame; the connection stays open. Once the connection is
// closing (Server.Shutdown, a slow client) frames still read are dropped: the client sends
// them again after it reconnects.
func (c *conn) readLoop(ctx context.Context, handle func(context.Context, []byte) error) {
	defer c.shut(closeGone)
	c.ws.SetReadLimit(maxFrame)
	// No read deadline: the keepalive closes a connection whose client went silent.
	c.ws.SetPongHandler(func(string) error { c.heard(); return nil })
	var lastLimited time.Time // when the client was last told it sends too fast
	for {
		// The loop waits here, for the next frame's header; the frame itself is read apart.
		_, r, err := c.ws.NextReader()
		if err != nil {
			return
		}
		c.stats.received()
		c.heard()
		if c.closing() {
			return
		}
		if !c.limit.Allow() { // the next NextReader skips what is left of this frame
			// Told once a second at most: a flood must not fill its own queue with errors.
			if now := time.Now(); now.Sub(lastLimited) >= time.Second {
				lastLimited = now
				c.sendError(kefu.Errorf("api.read", kefu.RateLimited, "too many messages: slow down"), nil)
			}
			continue
		}
		if !c.flight.enter() {
			return // the server is draining: no new work
		}
		ok, err := c.handleApart(ctx, handle, r)
		c.flight.leave()
		if !ok {
			return // the frame could not be read: the connection is gone, or it was too large (1009)
		}
		if err != nil {
			c.sendError(err, nil)
		}
	}
}

// handleApart reads a frame and runs handle on it on a goroutine of its own, and waits for
// it; ok is false when the frame could not be read. A frame's work (inflating it when the
// client compresses, a hello's queries, a turn through the model and the database) grows a
// goroutine's stack to tens of KB, which Go gives back only slowly; done apart, it leaves
// the read loop's stack small for the connection's idle life, and the deep one goes with
// the frame. A panic is the frame's error, not the process's end.
func (c *conn) handleApart(ctx context.Context, handle func(context.Context, []byte) error, r io.Reader) (ok bool, err error) {
	type result struct {
		err error
		ok  bool
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				if c.log != nil {
					c.log.ErrorContext(ctx, "a frame's handler panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				}
				done <- result{kefu.Errorf("api.read", kefu.Internal, "internal error"), true}
			}
		}()
		data, err := io.ReadAll(r)
		if err != nil {
			done <- result{nil, false}
			return
		}
		done <- result{handle(ctx, data), true}
	}()
	res := <-done
	return res.ok, res.err
}

// write sends one frame, compressed when the client negotiated permessage-deflate and the
// frame is worth it.
func (c *conn) write(frame []byte) error {
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
	c.ws.EnableWriteCompression(len(frame) >= compressMin) // a no-op unless negotiated
	if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		return err
	}
	c.stats.sent()
	return nil
}

// frame is an incoming frame: its type and the fields any type may use.
type frame struct {
	Type        string `json:"type"`
	SessionID   int64  `json:"session_id"`
	Token       string `json:"token"`
	Since       int64  `json:"since"`
	ClientID    string `json:"client_id"`
	Text        string `json:"text"`
	Status      string `json:"status"`
	Disposition string `json:"disposition"`
	Typing      *bool  `json:"typing"` // a typing frame; absent means typing
}

func decodeFrame(data []byte) (frame, error) {
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		return frame{}, kefu.Errorf("api.decodeFrame", kefu.Invalid, "a frame must be a JSON object with a type")
	}
	if f.Type == "" {
		return frame{}, kefu.Errorf("api.decodeFrame", kefu.Invalid, "the frame has no type")
	}
	return f, nil
}
