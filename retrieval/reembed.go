package retrieval

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/kefu-dev/kefu"
)

// Changing the embedder must not take the knowledge base away from customers: the new
// embedder's vectors are written beside the old ones while the store keeps serving from the
// old space, and the store switches only once every entry has its new vectors; the old
// vectors (and their index) are dropped after the switch. Entries published meanwhile get
// vectors in both spaces.

// reembedGrace is how long the old vectors outlive the switch, for searches in flight.
const reembedGrace = 2 * time.Second

// ReembedStatus is the progress of a change of embedder.
type ReembedStatus struct {
	From      string    `json:"from"`
	To        string    `json:"to"`
	Done      int       `json:"done"`
	Total     int       `json:"total"`
	Started   time.Time `json:"started"`
	Finished  bool      `json:"finished"`
	Error     string    `json:"error,omitempty"`
	Remaining int       `json:"remaining_old_vectors,omitempty"`
}

// Reembedding is the running (or last) change of embedder, or nil.
func (s *Store) Reembedding() *ReembedStatus { return s.reembed.Load() }

// reembedTarget is the space being built, while a change of embedder runs.
type reembedTarget struct{ sp atomic.Pointer[space] }

// embedders are the embedders whose vectors a change to an entry must write: the serving
// one, and the target of a running change.
func (s *Store) embedders() []Embedder {
	out := []Embedder{s.space().embedder}
	if t := s.target.sp.Load(); t != nil && t.embedder.EmbedderID() != out[0].EmbedderID() {
		out = append(out, t.embedder)
	}
	return out
}

// Reembed moves the store to embedder next (with its answerability model, which may be nil),
// without downtime: it embeds every entry with next while serving from the current space,
// switches when all are done, then drops the other embedders' vectors. It blocks until then
// (run it in its own goroutine to serve meanwhile); progress is logged and in Reembedding.
func (s *Store) Reembed(ctx context.Context, next Embedder, a *Answerability) error {
	const op = "retrieval.Reembed"
	if err := checkAnswerability(a, next); err != nil {
		return err
	}
	cur := s.space()
	st := &ReembedStatus{From: cur.embedder.EmbedderID(), To: next.EmbedderID(), Started: time.Now()}
	fail := func(err error) error {
		c := *st
		c.Error, c.Finished = kefu.MessageOf(err), true
		s.reembed.Store(&c)
		s.target.sp.Store(nil)
		return err
	}
	target := newSpace(next, a)
	if !s.target.sp.CompareAndSwap(nil, target) {
		return kefu.Errorf(op, kefu.Conflict, "a change of embedder is already running")
	}
	s.reembed.Store(st)
	last := time.Now()
	progress := func(done, total int) {
		c := *st
		c.Done, c.Total = done, total
		s.reembed.Store(&c)
		if time.Since(last) > 5*time.Second || done == total {
			last = time.Now()
			s.log.InfoContext(ctx, "re-embedding the knowledge base", "to", c.To, "done", done, "total", total)
		}
	}
	// Until nothing is missing: entries published during a pass get both vectors already,
	// but an import's entries are embedded after their commit.
	for range 3 {
		n, err := s.embedMissing(ctx, next, progress)
		if err != nil {
			return fail(err)
		}
		if n == 0 {
			break
		}
	}
	s.sp.Store(target)
	s.target.sp.Store(nil)
	// Vectors of entries published between the last pass and the switch were written for
	// both spaces; anything else still missing is embedded now, in the serving space.
	if _, err := s.embedMissing(ctx, next, nil); err != nil {
		return fail(err)
	}
	// Searches that began before the switch still read the old vectors: give them time to
	// finish before the old vectors go.
	select {
	case <-time.After(reembedGrace):
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	tag, err := s.pool.Exec(ctx, "DELETE FROM retrieval_vector WHERE embedder <> $1", next.EmbedderID())
	if err != nil {
		return fail(kefu.E(op, kefu.Unavailable, err))
	}
	done := *s.reembed.Load()
	done.Finished = true
	s.reembed.Store(&done)
	s.log.InfoContext(ctx, "knowledge base now served by the new embedder", "embedder", next.EmbedderID(),
		"seconds", time.Since(st.Started).Round(time.Millisecond).Seconds(), "old_vectors_dropped", tag.RowsAffected())
	return nil
}

// Coverage is how many entries have vectors of each embedder, and how many entries there are.
func (s *Store) Coverage(ctx context.Context) (map[string]int, int, error) {
	const op = "retrieval.Coverage"
	rows, err := s.pool.Query(ctx, "SELECT embedder, count(DISTINCT entry_id) FROM retrieval_vector GROUP BY embedder")
	if err != nil {
		return nil, 0, kefu.E(op, kefu.Unavailable, err)
	}
	out := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			rows.Close()
			return nil, 0, kefu.E(op, kefu.Unavailable, err)
		}
		out[id] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, kefu.E(op, kefu.Unavailable, err)
	}
	n, err := s.Count(ctx)
	return out, n, err
}
