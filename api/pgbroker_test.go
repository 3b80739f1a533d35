package api

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kefu-dev/kefu/internal/pgtest"
)

type chanSub chan []byte

func (c chanSub) Enqueue(f []byte) bool {
	select {
	case c <- f:
		return true
	default:
		return false
	}
}

// twoBrokers are two instances' brokers on one database (a schema of the test database).
func twoBrokers(t *testing.T) (*PGBroker, *PGBroker) {
	pool := pgtest.Schema(t)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	return NewPGBroker(pool, log), NewPGBroker(pool, log)
}

// Two instances on one database: what one publishes reaches the other's subscribers, in
// order, however large, and an instance does not hear its own frames twice.
func TestPGBroker(t *testing.T) {
	t.Parallel()
	a, b := twoBrokers(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go a.Run(ctx)
	go b.Run(ctx)
	atB, atA := make(chanSub, 2000), make(chanSub, 2000)
	defer b.Subscribe("session:1", atB)()
	defer a.Subscribe("session:1", atA)()
	time.Sleep(200 * time.Millisecond) // both listening
	big := `{"type":"assigned","text":"` + strings.Repeat("退款多久到账？refund ", 3000) + `"}`
	want := []string{`{"n":0}`, big}
	for i := 1; i <= 500; i++ {
		want = append(want, fmt.Sprintf(`{"n":%d}`, i))
	}
	for _, f := range want {
		a.Publish("session:1", []byte(f))
	}
	a.Publish("session:2", []byte(`{"elsewhere":true}`))
	for i, w := range want {
		select {
		case got := <-atB:
			if string(got) != w {
				t.Fatalf("frame %d at the other instance: %.80q, want %.80q", i, got, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("frame %d never reached the other instance", i)
		}
	}
	if len(atA) != len(want) {
		t.Fatalf("the publishing instance's own subscriber got %d frames, want %d (once each)", len(atA), len(want))
	}
	time.Sleep(100 * time.Millisecond)
	if len(atB) != 0 || len(atA) != len(want) {
		t.Fatalf("extra frames: %d at B, %d at A", len(atB), len(atA))
	}
}

// An instance that stops sends what it still has queued before it goes: the turns it drained
// last published frames for the other instances' clients.
func TestPGBrokerFlushesOnStop(t *testing.T) {
	t.Parallel()
	a, b := twoBrokers(t)
	actx, stopA := context.WithCancel(t.Context())
	bctx, stopB := context.WithCancel(t.Context())
	defer stopB()
	ranA := make(chan struct{})
	go func() { a.Run(actx); close(ranA) }()
	go b.Run(bctx)
	atB := make(chanSub, 2000)
	defer b.Subscribe("session:7", atB)()
	time.Sleep(200 * time.Millisecond) // both listening
	const n = 1500
	for i := range n {
		a.Publish("session:7", []byte(fmt.Sprintf(`{"n":%d}`, i)))
	}
	stopA() // most of them are still queued
	<-ranA
	for i := range n {
		select {
		case got := <-atB:
			if want := fmt.Sprintf(`{"n":%d}`, i); string(got) != want {
				t.Fatalf("frame %d: %s, want %s", i, got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("frame %d of %d never arrived: the stopping instance dropped its queue", i, n)
		}
	}
}
