package api

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kefu-dev/kefu/internal/pgtest"
)

// natsURL is the NATS server of the tests (KEFU_TEST_NATS_URL, else 127.0.0.1:4222, which
// scripts/setup provides). A server that does not answer skips the test on a developer's
// machine and fails it in CI (CI=true), where scripts/setup must have started one.
func natsURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("KEFU_TEST_NATS_URL")
	if u == "" {
		u = "nats://127.0.0.1:4222"
	}
	host := strings.TrimPrefix(u, "nats://")
	if p, err := url.Parse(u); err == nil && p.Host != "" {
		host = p.Host
	}
	c, err := net.DialTimeout("tcp", host, 2*time.Second)
	if err != nil {
		msg := fmt.Sprintf("no NATS server answers at %s (%v): scripts/setup installs and starts one; KEFU_TEST_NATS_URL names another", u, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	c.Close()
	return u
}

func waitConnected(t *testing.T, bs ...*NATSBroker) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, b := range bs {
		for !b.Connected() {
			if time.Now().After(deadline) {
				t.Fatal("the broker did not connect to NATS in 10 s")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := b.nc.Flush(); err != nil { // the subscription is registered with the server
			t.Fatal(err)
		}
	}
}

func newNATSBroker(t *testing.T, url, namespace string) *NATSBroker {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	b, err := NewNATSBroker(url, namespace, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return b
}

// Two instances on one NATS server: what one publishes reaches the other's subscribers, in
// order, however large (a frame over the server's payload limit travels in pieces), an
// instance does not hear its own frames twice, and another database's instances hear nothing.
func TestNATSBroker(t *testing.T) {
	t.Parallel()
	u := natsURL(t)
	ns, err := BrokerNamespace(t.Context(), pgtest.Schema(t))
	if err != nil {
		t.Fatal(err)
	}
	if ns2, _ := BrokerNamespace(t.Context(), pgtest.Schema(t)); ns2 == ns {
		t.Fatalf("two schemas share the namespace %s", ns)
	}
	a, b, other := newNATSBroker(t, u, ns), newNATSBroker(t, u, ns), newNATSBroker(t, u, ns+"x")
	atB, atA, atOther := make(chanSub, 2000), make(chanSub, 2000), make(chanSub, 10)
	defer b.Subscribe("session:1", atB)()
	defer a.Subscribe("session:1", atA)()
	defer other.Subscribe("session:1", atOther)()
	waitConnected(t, a, b, other)
	big := `{"type":"assigned","text":"` + strings.Repeat("退款多久到账？refund ", 3000) + `"}`
	huge := `{"type":"assigned","text":"` + strings.Repeat("客服", 400_000) + `"}` // 2.4 MB: pieces
	want := []string{`{"n":0}`, big, huge}
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
				t.Fatalf("frame %d at the other instance: %.80q (%d bytes), want %.80q (%d bytes)", i, got, len(got), w, len(w))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("frame %d never reached the other instance", i)
		}
	}
	if len(atA) != len(want) {
		t.Fatalf("the publishing instance's own subscriber got %d frames, want %d (once each)", len(atA), len(want))
	}
	// Back the other way, and a topic that is no subject stays home.
	b.Publish("agent:3", []byte(`{"to":"a"}`))
	atA3 := make(chanSub, 1)
	defer a.Subscribe("agent:3", atA3)()
	b.Publish("agent:3", []byte(`{"to":"a"}`))
	select {
	case <-atA3:
	case <-time.After(5 * time.Second):
		t.Fatal("a frame from the second instance never reached the first")
	}
	b.Publish("bad.topic", []byte(`{}`))
	if b.Dropped.Load() != 1 {
		t.Fatalf("Dropped = %d after a topic with a dot, want 1", b.Dropped.Load())
	}
	time.Sleep(200 * time.Millisecond)
	if len(atB) != 0 || len(atA) != len(want) || len(atOther) != 0 {
		t.Fatalf("extra frames: %d at B, %d at A, %d in another namespace", len(atB), len(atA)-len(want), len(atOther))
	}
}

// The brokers outlive their NATS server: it stops and starts again on the same port, and
// frames flow again without anyone restarting the instances. It runs a private nats-server
// (Debian's package), never touching the shared one.
func TestNATSBrokerReconnects(t *testing.T) {
	t.Parallel()
	natsURL(t) // the same rule: skip only outside CI
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		bin = "/usr/sbin/nats-server"
		if _, err := os.Stat(bin); err != nil {
			msg := "no nats-server program to run a private server (scripts/setup installs Debian's)"
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-l", filepath.Join(dir, "nats.log"))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); ; {
			if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
				c.Close()
				return cmd
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatal("the private nats-server did not start")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	server := start()
	t.Cleanup(func() { server.Process.Kill(); server.Wait() })
	u := fmt.Sprintf("nats://127.0.0.1:%d", port)
	a, b := newNATSBroker(t, u, "reconnect"), newNATSBroker(t, u, "reconnect")
	atB := make(chanSub, 100)
	defer b.Subscribe("session:9", atB)()
	waitConnected(t, a, b)
	expect := func(want string) {
		t.Helper()
		select {
		case got := <-atB:
			if string(got) != want {
				t.Fatalf("got %s, want %s", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s never arrived", want)
		}
	}
	a.Publish("session:9", []byte(`{"n":1}`))
	expect(`{"n":1}`)

	server.Process.Kill()
	server.Wait()
	for a.Connected() || b.Connected() {
		time.Sleep(10 * time.Millisecond)
	}
	a.Publish("session:9", []byte(`{"n":2}`)) // waits in a's reconnect buffer; b may not be subscribed yet
	server = start()
	waitConnected(t, a, b)
	// b renews its subscription on reconnecting; a frame sent after both are back arrives.
	for i := 3; ; i++ {
		a.Publish("session:9", []byte(fmt.Sprintf(`{"n":%d}`, i)))
		select {
		case got := <-atB:
			t.Logf("after the restart: %s", got)
			return
		case <-time.After(200 * time.Millisecond):
			if i > 50 {
				t.Fatal("no frame crossed after NATS came back")
			}
		}
	}
}
