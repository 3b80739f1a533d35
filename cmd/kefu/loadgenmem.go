package main

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kefu-dev/kefu/internal/memnet"
)

// memDialer connects to the server over its in-memory listener, each connection from its
// source address as the server sees it. Its client side has no goroutine per connection:
// the connection delivers what the server writes to the client's frame parser (memWS) in
// the server's writer goroutine, so that a hundred thousand clients in the server's own
// process cost about 2.5 KB each (the pipe included) rather than a reader's stack and
// buffers as well, and the process's memory is nearly all the server's.
type memDialer struct {
	ln       *memnet.Listener
	client   *http.Client
	compress bool
	mu       sync.Mutex
	port     int
}

func newMemDialer(ln *memnet.Listener, concurrency int, compress bool) *memDialer {
	return &memDialer{ln: ln, compress: compress, client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return ln.Dial(ctx, nil)
		},
		MaxIdleConnsPerHost: concurrency,
	}}}
}

func (d *memDialer) http() *http.Client { return d.client }
func (d *memDialer) base(string) string { return "http://kefu.mem" }

func (d *memDialer) connect(ctx context.Context, w *loadWorker, c *loadConn, source int, url string) error {
	d.mu.Lock()
	d.port = d.port%64511 + 1
	port := 1024 + d.port
	d.mu.Unlock()
	nc, err := d.ln.Dial(ctx, &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+source)), Port: port})
	if err != nil {
		return errors.New(netErrorKind(err))
	}
	conn := nc.(*memnet.Conn)
	m := &memWS{conn: conn, upgraded: make(chan error, 1),
		onFrame: func(data []byte) { w.handle(c, data) },
		onEnd:   func(err error) { w.ended(c, err) }}
	c.t = m
	conn.Deliver(m.feed, m.peerClosed)
	err = m.handshake(ctx, strings.TrimPrefix(url, "ws://kefu.mem"), d.compress)
	if err != nil {
		m.mu.Lock()
		m.onEnd = nil // not open: nothing to tell the worker
		m.mu.Unlock()
		conn.Close()
		return err
	}
	return nil
}

// handshake asks for the upgrade to a WebSocket and waits for the answer.
func (m *memWS) handshake(ctx context.Context, path string, compress bool) error {
	var key [16]byte
	_, _ = rand.Read(key[:])
	req := "GET " + path + " HTTP/1.1\r\nHost: kefu.mem\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key[:]) + "\r\n"
	if compress {
		req += "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"
	}
	if _, err := m.conn.Write([]byte(req + "\r\n")); err != nil {
		return errors.New(netErrorKind(err))
	}
	select {
	case err := <-m.upgraded:
		return err
	case <-time.After(10 * time.Second):
		return errors.New("timeout")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// memWS is the client side of a WebSocket over a memnet connection: it parses what the
// server writes as it is written (the handshake's response, then frames), answers pings and
// the close frame, and writes masked text frames.
type memWS struct {
	conn     *memnet.Conn
	onFrame  func([]byte) // a text message
	upgraded chan error   // the handshake's outcome

	mu       sync.Mutex // feed's state, and the end
	onEnd    func(error)
	partial  []byte // bytes of a frame (or of the response) not all there yet
	message  []byte // the fragments of a message so far
	deflated bool   // the message is compressed (RSV1 on its first frame)
	opened   bool
	finished bool
}

// feed is given what the server writes, in the server's goroutine; it must not keep p.
func (m *memWS) feed(p []byte) {
	m.mu.Lock()
	if m.finished {
		m.mu.Unlock()
		return
	}
	data := p
	if len(m.partial) > 0 {
		m.partial = append(m.partial, p...)
		data = m.partial
	}
	n, msgs, why := m.parse(data)
	m.partial = nil
	if n < len(data) {
		m.partial = append([]byte(nil), data[n:]...) // p is the server's, and partial may be reused
	}
	m.mu.Unlock()
	for _, msg := range msgs {
		m.onFrame(msg)
	}
	if why != nil {
		m.end(why)
	}
}

// parse reads the handshake's response, then whole frames, from data; it returns how many
// bytes it used, the text messages completed, and an error that ends the connection (a
// *websocket.CloseError for the server's close frame). Under mu.
func (m *memWS) parse(data []byte) (used int, msgs [][]byte, why error) {
	if !m.opened {
		end := bytes.Index(data, []byte("\r\n\r\n"))
		if end < 0 {
			return 0, nil, nil
		}
		status := string(data[:bytes.IndexByte(data, '\r')])
		if !strings.HasPrefix(status, "HTTP/1.1 101") {
			err := fmt.Errorf("HTTP %s", strings.TrimPrefix(status, "HTTP/1.1 "))
			m.upgraded <- err
			return len(data), nil, err
		}
		m.opened = true
		m.upgraded <- nil
		used = end + 4
	}
	for {
		f := data[used:]
		if len(f) < 2 {
			return used, msgs, nil
		}
		fin, op, size, head := f[0]&0x80 != 0, f[0]&0x0f, int(f[1]&0x7f), 2
		if f[1]&0x80 != 0 {
			return len(data), msgs, errors.New("masked frame from the server")
		}
		switch size {
		case 126:
			if len(f) < 4 {
				return used, msgs, nil
			}
			size, head = int(binary.BigEndian.Uint16(f[2:])), 4
		case 127:
			if len(f) < 10 {
				return used, msgs, nil
			}
			size, head = int(binary.BigEndian.Uint64(f[2:])), 10
		}
		if len(f) < head+size {
			return used, msgs, nil
		}
		payload := f[head : head+size]
		used += head + size
		switch op {
		case websocket.TextMessage, websocket.BinaryMessage, 0: // 0: a continuation
			if op != 0 {
				m.deflated = f[0]&0x40 != 0
			}
			if fin && len(m.message) == 0 && !m.deflated {
				msgs = append(msgs, payload)
				continue
			}
			m.message = append(m.message, payload...)
			if !fin {
				continue
			}
			msg := m.message
			m.message = nil
			if m.deflated {
				var err error
				if msg, err = inflate(msg); err != nil {
					return len(data), msgs, fmt.Errorf("inflate: %w", err)
				}
			}
			msgs = append(msgs, msg)
		case websocket.PingMessage:
			_ = m.writeFrame(websocket.PongMessage, payload)
		case websocket.CloseMessage:
			ce := &websocket.CloseError{Code: websocket.CloseNoStatusReceived}
			if len(payload) >= 2 {
				ce.Code, ce.Text = int(binary.BigEndian.Uint16(payload)), string(payload[2:])
			}
			_ = m.writeFrame(websocket.CloseMessage, payload[:min(len(payload), 2)])
			return len(data), msgs, ce
		}
	}
}

// inflate decompresses a permessage-deflate message (RFC 7692: the sender's flush marker
// removed; no context kept between messages).
func inflate(msg []byte) ([]byte, error) {
	r := flate.NewReader(io.MultiReader(bytes.NewReader(msg), strings.NewReader("\x00\x00\xff\xff\x01\x00\x00\xff\xff")))
	defer r.Close()
	return io.ReadAll(r)
}

// peerClosed is called when the server closes the connection.
func (m *memWS) peerClosed() { m.end(errors.New("EOF")) }

// end closes the connection and tells the worker, once.
func (m *memWS) end(why error) {
	m.mu.Lock()
	if m.finished {
		m.mu.Unlock()
		return
	}
	m.finished = true
	onEnd, opened := m.onEnd, m.opened
	if !opened {
		onEnd = nil // connect reports a failed handshake
	}
	m.partial, m.message = nil, nil
	m.mu.Unlock()
	if !opened {
		select {
		case m.upgraded <- why:
		default:
		}
	}
	m.conn.Close()
	if onEnd != nil {
		onEnd(why)
	}
}

func (m *memWS) write(frame []byte) error { return m.writeFrame(websocket.TextMessage, frame) }

// writeFrame writes one masked frame (a client's frames must be).
func (m *memWS) writeFrame(op int, payload []byte) error {
	b := make([]byte, 0, 14+len(payload))
	b = append(b, 0x80|byte(op))
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	b = append(b, mask[:]...)
	for i, c := range payload {
		b = append(b, c^mask[i&3])
	}
	_ = m.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := m.conn.Write(b)
	return err
}

// close closes the connection; gracefully, with a close frame first.
func (m *memWS) close(graceful bool) {
	if graceful {
		_ = m.writeFrame(websocket.CloseMessage, []byte{0x03, 0xe8}) // 1000
	}
	m.end(errors.New("closed"))
}
