package api

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

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
	c := newConn(nil) // no writer runs: the queue only fills
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
