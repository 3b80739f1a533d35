package retrieval

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// UsageLog writes usage rows in the background, batched, so that counting hits and gaps
// costs a conversation's turn nothing: Add never blocks, and a full buffer drops (and
// counts) rather than slow a reply down.
type UsageLog struct {
	store   *Store
	log     *slog.Logger
	ch      chan Usage
	dropped atomic.Int64
	done    chan struct{}
}

// NewUsageLog returns a log that buffers up to size rows.
func NewUsageLog(s *Store, size int) *UsageLog {
	if size <= 0 {
		size = 4096
	}
	return &UsageLog{store: s, log: s.log, ch: make(chan Usage, size), done: make(chan struct{})}
}

// Add queues u; it never blocks.
func (l *UsageLog) Add(u Usage) {
	select {
	case l.ch <- u:
	default:
		l.dropped.Add(1)
	}
}

// Dropped is how many rows a full buffer has dropped.
func (l *UsageLog) Dropped() int64 { return l.dropped.Load() }

// Run writes what is queued every interval (and whenever 500 rows wait) until ctx ends, then
// writes the rest.
func (l *UsageLog) Run(ctx context.Context, interval time.Duration) {
	defer close(l.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	var batch []Usage
	flush := func() {
		if len(batch) == 0 {
			return
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := l.store.Record(wctx, batch); err != nil {
			l.log.Warn("usage rows not written", "rows", len(batch), "err", err)
		}
		batch = batch[:0]
	}
	for {
		select {
		case u := <-l.ch:
			batch = append(batch, u)
			if len(batch) >= 500 {
				flush()
			}
		case <-t.C:
			flush()
		case <-ctx.Done():
			for {
				select {
				case u := <-l.ch:
					batch = append(batch, u)
				default:
					flush()
					return
				}
			}
		}
	}
}

// Wait returns once Run has written everything after its ctx ended.
func (l *UsageLog) Wait() { <-l.done }

// relatedTTL is how long suggestions for an entry are reused before they are read again.
const relatedTTL = 5 * time.Minute

type relatedEntry struct {
	questions []string
	at        time.Time
	loading   bool
}

// relatedCache holds suggestions per key and language, filled in the background so that a
// turn (which holds a transaction and must not wait for a second connection) only reads
// memory.
type relatedCache struct {
	mu sync.Mutex
	m  map[string]*relatedEntry
}

// RelatedCached returns the suggestions known for key in lang without waiting: on a miss, or
// when they are old, it starts reading them and returns what it has (possibly nothing).
func (s *Store) RelatedCached(key, lang string, n int) []string {
	c := &s.related
	id := key + "\x00" + lang
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]*relatedEntry{}
	}
	e := c.m[id]
	if e == nil {
		e = &relatedEntry{}
		c.m[id] = e
	}
	out := e.questions
	if !e.loading && time.Since(e.at) > relatedTTL {
		e.loading = true
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			qs, err := s.Related(ctx, key, lang, 5)
			c.mu.Lock()
			defer c.mu.Unlock()
			e.loading = false
			if err != nil {
				s.log.Warn("related questions not read", "key", key, "err", err)
				e.at = time.Now().Add(30*time.Second - relatedTTL) // try again in 30 s
				return
			}
			e.questions, e.at = qs, time.Now()
		}()
	}
	c.mu.Unlock()
	if len(out) > n {
		out = out[:n]
	}
	return out
}
