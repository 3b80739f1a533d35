package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
)

// NATSBroker is the Broker of several instances joined by a NATS server, for deployments
// that have one (PGBroker needs nothing but the database). A frame goes to this instance's
// subscribers at once and, published on the subject "kefu.<namespace>.<topic>" (the topic's
// ':' become '.': "session:7" → "kefu.3f2a….session.7"), to the other instances, each of
// which holds one wildcard subscription, "kefu.<namespace>.>", and delivers what it hears to
// its own subscribers. The connection is made with no-echo, so an instance never hears its
// own frames. A frame larger than the server's payload limit travels in pieces, put together
// by the receivers.
//
// The connection comes back by itself when NATS restarts: frames published meanwhile wait in
// the client's reconnect buffer (8 MiB), and the subscription is renewed. Delivery is at most
// once, as with PGBroker: a frame lost with a connection is what clients' resume (hello with
// since) recovers.
type NATSBroker struct {
	hub    *Hub
	nc     *nats.Conn
	log    *slog.Logger
	id     string // this instance, for the pieces of large frames
	prefix string // "kefu.<namespace>."
	seq    atomic.Uint64
	// away is set while NATS is unreachable, so that an outage is logged once, not at every
	// attempt.
	away atomic.Bool

	pieces assembler // sender and frame id → the pieces received so far
	// Dropped counts frames not sent to other instances: the client refused them (its
	// reconnect buffer full, the connection closed) or their topic cannot be a subject.
	Dropped atomic.Int64
}

// NATSSubjectRoot is the first token of every subject the broker uses.
const NATSSubjectRoot = "kefu"

// Header names of a frame sent in pieces.
const (
	natsFrameHeader = "Kefu-Frame" // "<instance> <frame id>"
	natsPartHeader  = "Kefu-Part"  // "<piece>/<pieces>"
)

// BrokerNamespace names the pool's database and schema (12 hex digits), as PGBroker's
// channel does, so that deployments and tests sharing a NATS server never hear each other.
func BrokerNamespace(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var ns string
	err := pool.QueryRow(ctx, `SELECT substr(md5(current_database() || '.' || current_schema()), 1, 12)`).Scan(&ns)
	if err != nil {
		return "", fmt.Errorf("api: broker namespace: %w", err)
	}
	return ns, nil
}

// NewNATSBroker connects to the NATS server at url ("nats://127.0.0.1:4222"; several
// servers separated by commas) and subscribes to namespace's frames. A server that does not
// answer yet is not an error: the client keeps trying, and the broker delivers locally
// meanwhile. Run closes the connection when its context ends.
func NewNATSBroker(url, namespace string, log *slog.Logger) (*NATSBroker, error) {
	if namespace == "" || strings.ContainsAny(namespace, ". *>\t\r\n") {
		return nil, fmt.Errorf("api: NATS namespace %q must be one subject token", namespace)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	nb := &NATSBroker{hub: NewHub(), log: log.With("component", "broker", "broker", "nats"), id: hex.EncodeToString(b),
		prefix: NATSSubjectRoot + "." + namespace + "."}
	nc, err := nats.Connect(url,
		nats.Name("kefu "+nb.id),
		nats.NoEcho(), // this instance's frames reached its subscribers already
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.Timeout(5*time.Second),
		nats.ConnectHandler(func(c *nats.Conn) {
			nb.away.Store(false)
			nb.log.Info("broker connected to NATS", "url", c.ConnectedUrlRedacted())
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				nb.log.Warn("broker lost its NATS connection; reconnecting", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			nb.away.Store(false)
			nb.log.Info("broker reconnected to NATS", "url", c.ConnectedUrlRedacted())
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			if !nb.away.Swap(true) {
				nb.log.Warn("broker cannot reach NATS; retrying", "err", err)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			nb.log.Warn("NATS error", "err", err) // a slow consumer, a refused publish
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("api: NATS %s: %w", redactURL(url), err)
	}
	nb.nc = nc
	sub, err := nc.Subscribe(nb.prefix+">", nb.receive)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("api: NATS subscribe: %w", err)
	}
	// A burst of frames is handed to the hub, which never blocks; the limits only guard
	// memory should the process stall.
	_ = sub.SetPendingLimits(1<<16, 64<<20)
	if !nc.IsConnected() {
		nb.log.Warn("broker cannot reach NATS yet; frames stay on this instance until it does", "url", redactURL(url))
	}
	return nb, nil
}

// redactURL hides a password in a NATS URL (nats://user:secret@host).
func redactURL(url string) string {
	var out []string
	for u := range strings.SplitSeq(url, ",") {
		if at := strings.LastIndex(u, "@"); at >= 0 {
			if scheme := strings.Index(u, "://"); scheme >= 0 && scheme < at {
				u = u[:scheme+3] + "…" + u[at:]
			}
		}
		out = append(out, u)
	}
	return strings.Join(out, ",")
}

// Publish delivers frame to this instance's subscribers and publishes it for the others. It
// never blocks: while NATS is away the frame waits in the client's reconnect buffer.
func (b *NATSBroker) Publish(topic string, frame []byte) {
	b.hub.Publish(topic, frame)
	subject, ok := b.subject(topic)
	if !ok {
		b.Dropped.Add(1)
		b.log.Warn("a topic that cannot be a NATS subject stays on this instance", "topic", topic)
		return
	}
	limit := int(b.nc.MaxPayload()) - 512 // room for the headers of a piece
	if limit <= 0 {
		limit = 1<<20 - 512 // not connected yet: the server's default limit
	}
	if len(frame) <= limit {
		if err := b.nc.Publish(subject, frame); err != nil {
			b.dropped(err)
		}
		return
	}
	texts := splitRunes(frame, limit)
	id := b.id + " " + strconv.FormatUint(b.seq.Add(1), 36)
	for i, t := range texts {
		m := nats.NewMsg(subject)
		m.Header.Set(natsFrameHeader, id)
		m.Header.Set(natsPartHeader, fmt.Sprintf("%d/%d", i+1, len(texts)))
		m.Data = t
		if err := b.nc.PublishMsg(m); err != nil {
			b.dropped(err)
			return
		}
	}
}

func (b *NATSBroker) dropped(err error) {
	b.Dropped.Add(1)
	if !errors.Is(err, nats.ErrConnectionClosed) {
		b.log.Warn("frame not sent to other instances", "err", err)
	}
}

// splitRunes cuts frame into pieces of at most n bytes that end on rune boundaries.
func splitRunes(frame []byte, n int) [][]byte {
	var out [][]byte
	for len(frame) > n {
		end := n
		for end > 0 && !utf8.RuneStart(frame[end]) {
			end--
		}
		out, frame = append(out, frame[:end]), frame[end:]
	}
	return append(out, frame)
}

// subject is topic's subject: "session:7" → "kefu.<namespace>.session.7". A topic with a
// character a subject cannot hold ('.', a space, a wildcard) has none.
func (b *NATSBroker) subject(topic string) (string, bool) {
	if topic == "" || strings.ContainsAny(topic, ". *>\t\r\n") {
		return "", false
	}
	return b.prefix + strings.ReplaceAll(topic, ":", "."), true
}

// Subscribe adds s to topic on this instance.
func (b *NATSBroker) Subscribe(topic string, s Subscriber) func() { return b.hub.Subscribe(topic, s) }

// Run holds the connection until ctx ends, then sends what is buffered and closes it.
func (b *NATSBroker) Run(ctx context.Context) {
	<-ctx.Done()
	done := make(chan struct{})
	go func() {
		if b.nc.IsConnected() {
			_ = b.nc.FlushTimeout(2 * time.Second)
		}
		b.nc.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// Connected reports whether the broker is connected to NATS now.
func (b *NATSBroker) Connected() bool { return b.nc.IsConnected() }

func (b *NATSBroker) receive(m *nats.Msg) {
	rest, ok := strings.CutPrefix(m.Subject, b.prefix)
	if !ok || rest == "" {
		return
	}
	topic := strings.ReplaceAll(rest, ".", ":")
	part := m.Header.Get(natsPartHeader)
	if part == "" {
		b.hub.Publish(topic, m.Data)
		return
	}
	var i, n int
	if _, err := fmt.Sscanf(part, "%d/%d", &i, &n); err != nil {
		return
	}
	if frame, ok := b.pieces.add(m.Header.Get(natsFrameHeader), i, n, string(m.Data)); ok {
		b.hub.Publish(topic, []byte(frame))
	}
}
