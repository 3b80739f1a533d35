package memnet

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

// TestConn runs the net.Conn conformance suite: reads and writes in both directions,
// deadlines, closes, concurrent use.
func TestConn(t *testing.T) {
	nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
		a, b := Pipe(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 1}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2})
		return a, b, func() { a.Close(); b.Close() }, nil
	})
}

func TestBufferedWriteDoesNotWaitForTheReader(t *testing.T) {
	a, b := Pipe(nil, nil)
	defer a.Close()
	defer b.Close()
	msg := bytes.Repeat([]byte("x"), 10_000)
	if _, err := a.Write(msg); err != nil {
		t.Fatal(err)
	}
	_ = a.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := a.Write(bytes.Repeat([]byte("y"), bufferMax))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a write past the buffer: %v, want the deadline", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(b, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("read %d bytes, err %v", len(got), err)
	}
}

func TestCloseDeliversWhatWasWrittenThenEOF(t *testing.T) {
	a, b := Pipe(nil, nil)
	if _, err := a.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	a.Close()
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "bye" {
		t.Fatalf("read %q, %v", got, err)
	}
	if _, err := b.Write([]byte("x")); err == nil {
		t.Fatal("a write to a closed peer succeeded")
	}
}

// TestHTTPServer serves HTTP on a Listener and checks the server sees the dialled address.
func TestHTTPServer(t *testing.T) {
	l, err := Listen("127.0.0.1:80")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.RemoteAddr)
	})}
	go srv.Serve(l)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return l.Dial(ctx, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 4000})
	}}}
	resp, err := client.Get("http://kefu.mem/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(body), "127.0.0.9:4000") {
		t.Fatalf("the server saw %q", body)
	}
	l.Close()
	if _, err := l.Dial(context.Background(), nil); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("dial after close: %v", err)
	}
}

func TestDeliver(t *testing.T) {
	a, b := Pipe(nil, nil)
	if _, err := a.Write([]byte("early ")); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	ended := make(chan struct{})
	b.Deliver(func(p []byte) { got.Write(p) }, func() { close(ended) })
	for _, s := range []string{"and ", "late"} {
		if _, err := a.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	select {
	case <-ended:
	case <-time.After(time.Second):
		t.Fatal("closed was not called")
	}
	if got.String() != "early and late" {
		t.Fatalf("delivered %q", got.String())
	}
	if _, err := b.Write([]byte("x")); err == nil {
		t.Fatal("a write to a closed peer succeeded")
	}
}
