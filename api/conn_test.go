package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/kefu-dev/kefu"
)

func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{`{"type":"hello","session_id":1,"token":"t"}`, `{"type":"message","text":"你好"}`,
		`{}`, `[]`, `null`, `{"type":1}`, `{"type":"x","session_id":"1"}`, "\xff", ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := decodeFrame(data)
		if err != nil {
			if c := kefu.CodeOf(err); c != kefu.Invalid {
				t.Fatalf("decodeFrame(%q) error code %s, want invalid", data, c)
			}
			return
		}
		if fr.Type == "" {
			t.Fatalf("decodeFrame(%q) accepted a frame without a type", data)
		}
		if _, err := json.Marshal(fr); err != nil {
			t.Fatal(err)
		}
		if !utf8.ValidString(fr.Type) {
			t.Logf("type %q is not valid UTF-8 (json replaced it)", fr.Type)
		}
	})
}

type recorder struct{ got [][]byte }

func (r *recorder) Enqueue(b []byte) bool { r.got = append(r.got, b); return true }

func TestHub(t *testing.T) {
	t.Parallel()
	h := NewHub()
	a, b := &recorder{}, &recorder{}
	unA := h.Subscribe("session:1", a)
	h.Subscribe("session:1", b)
	h.Subscribe("session:2", &recorder{})
	h.Publish("session:1", []byte("x"))
	h.Publish("session:3", []byte("nobody"))
	unA()
	unA() // twice is harmless
	h.Publish("session:1", []byte("y"))
	if len(a.got) != 1 || len(b.got) != 2 || h.Count("session:1") != 1 {
		t.Fatalf("a got %d, b got %d, %d subscribers left", len(a.got), len(b.got), h.Count("session:1"))
	}
}

func TestSlowConnectionIsClosedNotWaitedFor(t *testing.T) {
	t.Parallel()
	c := newConn(nil, nil) // no writer runs: the queue only fills
	for i := range sendQueue {
		if !c.Enqueue([]byte{byte(i)}) {
			t.Fatalf("frame %d refused before the queue was full", i)
		}
	}
	if c.Enqueue([]byte("one too many")) {
		t.Fatal("a full queue accepted a frame")
	}
	select {
	case <-c.done:
	default:
		t.Fatal("a slow connection was not closed")
	}
	if c.reason != closeSlow {
		t.Fatalf("closed with %v, want %v", c.reason, closeSlow)
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code kefu.Code
		want int
	}{
		{kefu.Invalid, 400}, {kefu.Unauthorized, 401}, {kefu.NotFound, 404}, {kefu.Conflict, 409},
		{kefu.TooLarge, 413}, {kefu.RateLimited, 429}, {kefu.Unavailable, 503}, {kefu.Internal, 500},
	}
	for _, tt := range tests {
		if got := status(tt.code); got != tt.want {
			t.Errorf("status(%s) = %d, want %d", tt.code, got, tt.want)
		}
	}
	if b := describe(kefu.E("x", kefu.Internal, errSecret)); b.Message != "Internal Server Error" {
		t.Errorf("an internal error leaked its cause: %q", b.Message)
	}
}

var errSecret = json.Unmarshal([]byte("{"), new(any)) // any error with text a user must not see

// TestConnWritesOnDemandAndPings: frames go out in order through a writer that runs only
// while there is something to write, pings come from the timer, and the close frame carries
// the reason.
func TestConnWritesOnDemandAndPings(t *testing.T) {
	t.Parallel()
	server := make(chan *conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := newConn(ws, newKeepalive(30*time.Millisecond, time.Minute))
		c.run()
		server <- c
	}))
	defer srv.Close()
	client, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var pings atomic.Int32
	client.SetPingHandler(func(string) error { pings.Add(1); return nil })
	c := <-server

	for round := range 3 {
		for i := range 10 {
			if !c.Enqueue([]byte(fmt.Sprintf(`{"n":%d}`, round*10+i))) {
				t.Fatal("a frame was refused")
			}
		}
		for i := range 10 {
			_, data, err := client.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf(`{"n":%d}`, round*10+i); string(data) != want {
				t.Fatalf("got %s, want %s", data, want)
			}
		}
		// Written: the writer ends, and the idle connection keeps no queue.
		deadline := time.Now().Add(2 * time.Second)
		for {
			c.mu.Lock()
			idle := !c.writing && c.queue == nil
			c.mu.Unlock()
			if idle {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the writer still runs on an idle connection")
			}
			time.Sleep(time.Millisecond)
		}
	}

	// Pings are control frames: the client sees them while it reads.
	type read struct {
		data string
		err  error
	}
	reads := make(chan read, 4)
	go func() {
		for {
			_, data, err := client.ReadMessage()
			reads <- read{string(data), err}
			if err != nil {
				return
			}
		}
	}()
	deadline := time.Now().Add(2 * time.Second)
	for pings.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d pings in 2 s at one per 30 ms", pings.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}

	c.Enqueue([]byte(`{"last":true}`))
	c.shut(closeShutdown)
	if r := <-reads; r.err != nil || r.data != `{"last":true}` {
		t.Fatalf("the frame queued before the close: %s %v", r.data, r.err)
	}
	r := <-reads
	var ce *websocket.CloseError
	if !errors.As(r.err, &ce) || ce.Code != closeShutdown.code {
		t.Fatalf("after the queue: %v, want close %d", r.err, closeShutdown.code)
	}
	if c.Enqueue([]byte("late")) {
		t.Fatal("a closed connection accepted a frame")
	}
}

// TestKeepaliveClosesSilentClients: one keepalive pings every connection; a client that answers
// the pings stays, one that stops reading (so sends no pong) is closed once it has been silent
// for longer than the wait, and the keepalive lets go of the connections it closed.
func TestKeepaliveClosesSilentClients(t *testing.T) {
	t.Parallel()
	// A 1 ms tick: a slow machine's late ticks stretch the 64 ms between visits, so the wait is
	// wide.
	ka := newKeepalive(64*time.Millisecond, 600*time.Millisecond)
	server := make(chan *conn, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := newConn(ws, ka)
		c.run()
		server <- c
		c.readLoop(context.Background(), func(context.Context, []byte) error { return nil })
	}))
	defer srv.Close()
	dial := func() *websocket.Conn {
		client, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close() })
		return client
	}
	start := time.Now()
	talker := dial() // reads, so gorilla answers each ping with a pong
	alive := <-server
	var pings atomic.Int32
	talker.SetPingHandler(func(data string) error {
		pings.Add(1)
		return talker.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	go func() {
		for {
			if _, _, err := talker.ReadMessage(); err != nil {
				return
			}
		}
	}()
	dial() // never reads: no pong
	silent := <-server

	select {
	case <-silent.done:
	case <-time.After(3 * time.Second):
		t.Fatal("a client silent for 3 s is still connected (wait 600 ms)")
	}
	if silent.reason != closeGone {
		t.Errorf("the silent client was closed with %v, want %v", silent.reason, closeGone)
	}
	time.Sleep(time.Until(start.Add(1500 * time.Millisecond))) // well past the wait
	if alive.closing() || pings.Load() < 3 {
		t.Fatalf("the client answering pings: closed %v after %d pings", alive.closing(), pings.Load())
	}
	ka.mu.Lock()
	held, slot := ka.count, silent.kaSlot
	ka.mu.Unlock()
	if held != 1 || slot != -1 {
		t.Errorf("the keepalive holds %d connections (want 1) and the closed one at slot %d", held, slot)
	}
	alive.shut(closeShutdown)
	deadline := time.Now().Add(2 * time.Second)
	for {
		ka.mu.Lock()
		running := ka.running
		ka.mu.Unlock()
		if !running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the keepalive's loop still runs with no connection")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
