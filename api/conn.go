package api

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/kefu-dev/kefu"
)

const (
	maxFrame   = 64 << 10 // bytes; gorilla answers a larger frame with close 1009
	sendQueue  = 64       // frames queued per connection before it counts as slow
	writeWait  = 10 * time.Second
	pongWait   = 60 * time.Second
	helloWait  = 15 * time.Second
	frameRate  = 5  // frames per second a connection may send on average…
	frameBurst = 20 // …and in a burst
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

// conn is one WebSocket connection: the handler's goroutine only reads, writeLoop alone
// writes, and a full queue closes this connection, never blocking the sender.
type conn struct {
	ws     *websocket.Conn
	send   chan []byte // never closed, so a late Enqueue cannot panic
	done   chan struct{}
	once   sync.Once
	reason closeReason // set once, before done closes
	limit  *rate.Limiter
}

func newConn(ws *websocket.Conn) *conn {
	return &conn{ws: ws, send: make(chan []byte, sendQueue), done: make(chan struct{}),
		limit: rate.NewLimiter(frameRate, frameBurst)}
}

func (c *conn) shut(r closeReason) { c.once.Do(func() { c.reason = r; close(c.done) }) }

// Enqueue queues a frame; a connection that cannot keep up is closed with 4008 and resumes
// from its last seq when it reconnects.
func (c *conn) Enqueue(frame []byte) bool {
	select {
	case <-c.done:
		return false
	default:
	}
	select {
	case c.send <- frame:
		return true
	default:
		c.shut(closeSlow)
		return false
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
// fails is answered with an error frame; the connection stays open.
func (c *conn) readLoop(ctx context.Context, handle func(context.Context, []byte) error) {
	defer c.shut(closeGone)
	c.ws.SetReadLimit(maxFrame)
	_ = c.ws.SetReadDeadline(time.Now().Add(pongWait))
	c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(time.Now().Add(pongWait)) })
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(pongWait))
		if !c.limit.Allow() {
			c.sendError(kefu.Errorf("api.read", kefu.RateLimited, "too many messages: slow down"), nil)
			continue
		}
		if err := handle(ctx, data); err != nil {
			c.sendError(err, nil)
		}
	}
}

func (c *conn) writeLoop() {
	ping := time.NewTicker(pongWait * 9 / 10)
	defer ping.Stop()
	defer c.ws.Close() // makes ReadMessage fail, which ends the read loop
	for {
		select {
		case frame := <-c.send:
			_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
				c.shut(closeGone)
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
				c.shut(closeGone)
				return
			}
		case <-c.done:
			// Flush what is queued, then say goodbye.
		drain:
			for {
				select {
				case frame := <-c.send:
					_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
					if c.ws.WriteMessage(websocket.TextMessage, frame) != nil {
						return
					}
				default:
					break drain
				}
			}
			msg := websocket.FormatCloseMessage(c.reason.code, c.reason.text)
			_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(writeWait))
			return
		}
	}
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
