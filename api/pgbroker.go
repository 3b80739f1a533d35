package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PGBroker is the Broker of several instances on one database: a frame goes to this
// instance's subscribers at once and, through PostgreSQL NOTIFY, to the other instances',
// which deliver it to theirs. Frames are sent in batches, one statement per batch; a frame
// larger than a notification may carry is sent in pieces, put together by the receivers.
// Delivery is at most once: a frame lost with a connection is what clients' resume (by seq)
// recovers.
type PGBroker struct {
	hub  *Hub
	pool *pgxpool.Pool
	log  *slog.Logger
	id   string // this instance, so that it skips its own notifications
	out  chan outFrame
	// channel is BrokerChannel suffixed with the database and schema, so that deployments (and
	// tests) sharing a server never hear each other; set by Run before anything is sent.
	channel string
	seq     atomic.Uint64

	pieces assembler // frames received in pieces
	// Dropped counts frames not sent to other instances because the outbox was full.
	Dropped atomic.Int64
}

type outFrame struct{ topic, frame string }

type pieces struct {
	parts []string
	got   int
	at    time.Time
}

// assembler puts together frames that travelled in pieces, keyed by sender and frame id.
type assembler struct {
	mu      sync.Mutex
	partial map[string]*pieces
}

// add records piece i of n (1-based) of the frame key; it returns the whole frame when this
// was the last piece missing. Bad, repeated or inconsistent pieces are ignored.
func (a *assembler) add(key string, i, n int, text string) (string, bool) {
	if i < 1 || i > n || n > 1024 {
		return "", false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.partial == nil {
		a.partial = map[string]*pieces{}
	}
	p := a.partial[key]
	if p == nil {
		now := time.Now()
		for k, old := range a.partial { // a sender that died mid-frame leaves pieces behind
			if now.Sub(old.at) > time.Minute {
				delete(a.partial, k)
			}
		}
		p = &pieces{parts: make([]string, n), at: now}
		a.partial[key] = p
	}
	if len(p.parts) != n || p.parts[i-1] != "" {
		return "", false
	}
	p.parts[i-1] = text
	p.got++
	if p.got < n {
		return "", false
	}
	delete(a.partial, key)
	return strings.Join(p.parts, ""), true
}

// BrokerChannel is the prefix of the PostgreSQL channel frames travel on.
const BrokerChannel = "kefu_frames"

// channelFor names the channel of the pool's database and schema.
func channelFor(ctx context.Context, pool *pgxpool.Pool, prefix string) (string, error) {
	var ch string
	err := pool.QueryRow(ctx, `SELECT $1 || '_' || substr(md5(current_database() || '.' || current_schema()), 1, 12)`, prefix).Scan(&ch)
	return ch, err
}

// maxPayload keeps a notification under PostgreSQL's 8000-byte limit with room for the header.
const maxPayload = 7600

// NewPGBroker returns a broker over the pool; Run must be running for frames to cross
// instances.
func NewPGBroker(pool *pgxpool.Pool, log *slog.Logger) *PGBroker {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return &PGBroker{hub: NewHub(), pool: pool, log: log.With("component", "broker"), id: hex.EncodeToString(b),
		out: make(chan outFrame, 8192)}
}

// Publish delivers frame to this instance's subscribers and queues it for the others. It
// never blocks.
func (b *PGBroker) Publish(topic string, frame []byte) {
	b.hub.Publish(topic, frame)
	select {
	case b.out <- outFrame{topic, string(frame)}:
	default:
		b.Dropped.Add(1)
	}
}

// Subscribe adds s to topic on this instance.
func (b *PGBroker) Subscribe(topic string, s Subscriber) func() { return b.hub.Subscribe(topic, s) }

// Run sends queued frames and receives the other instances' until ctx ends, reconnecting
// when the database goes away.
func (b *PGBroker) Run(ctx context.Context) {
	for b.channel == "" {
		ch, err := channelFor(ctx, b.pool, BrokerChannel)
		if err == nil {
			b.channel = ch
			break
		}
		if ctx.Err() != nil {
			return
		}
		b.log.WarnContext(ctx, "broker cannot reach the database; retrying", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { b.send(ctx) })
	wg.Go(func() { b.listen(ctx) })
	wg.Wait()
}

// Payload: "<instance> <frame id> <piece>/<pieces> <topic> <text>".
func (b *PGBroker) payloads(f outFrame) []string {
	id := strconv.FormatUint(b.seq.Add(1), 36)
	// Pieces end on rune boundaries: each notification must be valid UTF-8 on its own.
	var texts []string
	for text := f.frame; ; {
		if len(text) <= maxPayload {
			texts = append(texts, text)
			break
		}
		end := maxPayload
		for end > 0 && !utf8.RuneStart(text[end]) {
			end--
		}
		texts, text = append(texts, text[:end]), text[end:]
	}
	out := make([]string, len(texts))
	for i, t := range texts {
		out[i] = fmt.Sprintf("%s %s %d/%d %s %s", b.id, id, i+1, len(texts), f.topic, t)
	}
	return out
}

func (b *PGBroker) send(ctx context.Context) {
	for {
		var batch []string
		select {
		case <-ctx.Done():
			b.flush(ctx)
			return
		case f := <-b.out:
			batch = append(batch, b.payloads(f)...)
		}
		// A batch taken is sent even if the broker is told to stop meanwhile (within 5 s).
		nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		b.notify(nctx, b.gather(batch))
		cancel()
	}
}

// gather adds the frames already queued to batch, up to 256 notifications.
func (b *PGBroker) gather(batch []string) []string {
	for len(batch) < 256 {
		select {
		case f := <-b.out:
			batch = append(batch, b.payloads(f)...)
		default:
			return batch
		}
	}
	return batch
}

// flush sends what is still queued when the broker stops: the server drains its turns before
// it stops the broker, and their last frames are for customers and agents on other
// instances. It tries for at most 2 s; what does not go out, clients fetch by seq when they
// resume.
func (b *PGBroker) flush(ctx context.Context) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	for fctx.Err() == nil {
		batch := b.gather(nil)
		if len(batch) == 0 {
			return
		}
		b.notify(fctx, batch)
	}
}

// notify sends batch in one statement, retrying a few times while ctx lasts.
func (b *PGBroker) notify(ctx context.Context, batch []string) {
	for attempt := 0; ; attempt++ {
		_, err := b.pool.Exec(ctx, "SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS u(p, i) ORDER BY i",
			b.channel, batch)
		if err == nil || ctx.Err() != nil {
			return
		}
		if attempt == 3 {
			b.log.WarnContext(ctx, "frames not sent to other instances", "frames", len(batch), "err", err)
			return
		}
		time.Sleep(time.Duration(100<<attempt) * time.Millisecond)
	}
}

func (b *PGBroker) listen(ctx context.Context) {
	for ctx.Err() == nil {
		err := func() error {
			c, err := b.pool.Acquire(ctx)
			if err != nil {
				return err
			}
			defer c.Release()
			if _, err := c.Exec(ctx, "LISTEN "+pgx.Identifier{b.channel}.Sanitize()); err != nil {
				return err
			}
			for {
				n, err := c.Conn().WaitForNotification(ctx)
				if err != nil {
					c.Conn().Close(context.Background()) //nolint:errcheck // a listening conn is not reused
					return err
				}
				b.receive(n.Payload)
			}
		}()
		if ctx.Err() != nil {
			return
		}
		b.log.WarnContext(ctx, "broker lost its connection; reconnecting", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (b *PGBroker) receive(payload string) {
	parts := strings.SplitN(payload, " ", 5)
	if len(parts) != 5 || parts[0] == b.id {
		return
	}
	var i, n int
	if _, err := fmt.Sscanf(parts[2], "%d/%d", &i, &n); err != nil || i < 1 || i > n || n > 1024 {
		return
	}
	topic, text := parts[3], parts[4]
	if n == 1 {
		b.hub.Publish(topic, []byte(text))
		return
	}
	if frame, ok := b.pieces.add(parts[0]+" "+parts[1], i, n, text); ok {
		b.hub.Publish(topic, []byte(frame))
	}
}
