package retrieval

import (
	"context"
	"crypto/sha256"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"

	"github.com/kefu-dev/kefu"
)

// Embedding many entries (an import) is a pipeline: one worker per core embeds runs of up to
// embedGroup phrasings of similar length, and one writer stores the vectors with COPY, a
// transaction per window of entries, while the workers go on with the next. When an import brings more vectors than the embedder's
// HNSW index holds (bulkVectors at least), the index is dropped first and built again after
// the last vector: building a graph over all of them at once is many times faster than
// inserting each into it. Search is exact (and slower) in between.
const (
	embedGroup  = 64
	embedWindow = 8192 // phrasings sorted by length together
	bulkVectors = 5000
)

// embedTodo is an entry without vectors and its phrasings.
type embedTodo struct {
	id        int64
	phrasings []string
}

// scanTodos reads rows of (id, kind, title, question, alternates, answer) into the entries'
// phrasings to embed.
func scanTodos(rows pgx.Rows) ([]embedTodo, error) {
	defer rows.Close()
	var list []embedTodo
	for rows.Next() {
		var id int64
		var kind, title, question, answer string
		var alts []string
		if err := rows.Scan(&id, &kind, &title, &question, &alts, &answer); err != nil {
			return nil, err
		}
		list = append(list, embedTodo{id, phrasings(kind, title, question, alts, answer)})
	}
	return list, rows.Err()
}

// embedMissing embeds, with e, every entry that has no vectors of e (replacing only e's
// vectors: others keep serving until they are dropped), calling progress with the number of
// entries done and the total.
func (s *Store) embedMissing(ctx context.Context, e Embedder, progress func(done, total int)) (int, error) {
	const op = "retrieval.EmbedMissing"
	if err := s.indexMissingLexical(ctx); err != nil {
		return 0, err
	}
	const q = `
SELECT id, kind, title, question, alternates, answer FROM retrieval_entry x
WHERE NOT EXISTS (SELECT 1 FROM retrieval_vector v WHERE v.entry_id = x.id AND v.embedder = $1)
ORDER BY id`
	rows, err := s.pool.Query(ctx, q, e.EmbedderID())
	if err != nil {
		return 0, kefu.E(op, kefu.Unavailable, err)
	}
	list, err := scanTodos(rows)
	if err != nil {
		return 0, kefu.E(op, kefu.Unavailable, err)
	}
	n := 0
	for _, t := range list {
		n += len(t.phrasings)
	}
	rebuild := false
	if embedderDim(e) > 0 && n >= bulkVectors {
		var have int
		if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM retrieval_vector WHERE embedder = $1", e.EmbedderID()).Scan(&have); err != nil {
			return 0, kefu.E(op, kefu.Unavailable, err)
		}
		if rebuild = n > have; rebuild {
			if _, err := s.pool.Exec(ctx, "DROP INDEX IF EXISTS "+indexName(e)); err != nil {
				return 0, kefu.E(op, kefu.Unavailable, err)
			}
		}
	}
	if !rebuild {
		if err := s.ensureIndex(ctx, e); err != nil {
			return 0, err
		}
	}
	t0 := time.Now()
	done, err := s.embedAll(ctx, e, list, progress)
	s.clock.since(&s.clock.embedding, t0)
	if rebuild { // also after an error: what was written is searchable, and the next call embeds the rest
		if ierr := s.ensureIndex(ctx, e); err == nil {
			err = ierr
		}
	}
	if err != nil {
		return done, err
	}
	if len(list) > 0 {
		s.log.InfoContext(ctx, "embedded knowledge entries", "entries", len(list), "vectors", n, "embedder", e.EmbedderID())
		s.analyze(ctx)
	}
	return done, nil
}

// analyze refreshes the planner's statistics of the searched tables after a bulk change.
// Autovacuum would, a minute or so later; meanwhile the searches' prepared statements would be
// planned for tables the planner believes empty (on the demo knowledge base: an HNSW scan that
// visits every vector instead of a scan of 500 rows, and ten times the index lookups in the
// lexical query), and a pooled connection keeps such a plan until the statistics change.
func (s *Store) analyze(ctx context.Context) {
	if _, err := s.pool.Exec(ctx, "ANALYZE retrieval_entry, retrieval_vector, retrieval_posting"); err != nil {
		s.log.WarnContext(ctx, "could not refresh the knowledge tables' statistics", "err", err)
	}
}

// embedAll embeds list's phrasings with e and writes the vectors; it returns how many entries
// it wrote. It goes a window of entries at a time: the window's phrasings sorted by length (a
// model run pads its texts to the longest) and embedded in runs of embedGroup, a run per core
// at a time, while the writer stores the window before.
func (s *Store) embedAll(ctx context.Context, e Embedder, list []embedTodo, progress func(done, total int)) (int, error) {
	const op = "retrieval.EmbedMissing"
	type window struct {
		entries []embedTodo
		vecs    [][]float32 // the entries' phrasings', in order
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	written := make(chan *window, 1)
	var done int
	var writeErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		for w := range written {
			if writeErr != nil {
				continue
			}
			if writeErr = s.writeVectors(ctx, e, w.entries, w.vecs); writeErr != nil {
				cancel()
				continue
			}
			done += len(w.entries)
			if progress != nil {
				progress(done, len(list))
			}
		}
	})
	finish := func(err error) (int, error) {
		close(written)
		wg.Wait()
		if writeErr != nil {
			return done, writeErr
		}
		return done, err
	}
	workers := runtime.NumCPU()
	for i := 0; i < len(list); {
		j, n := i, 0
		for j < len(list) && (n == 0 || n+len(list[j].phrasings) <= embedWindow) {
			n += len(list[j].phrasings)
			j++
		}
		w := &window{entries: list[i:j], vecs: make([][]float32, n)}
		texts := make([]string, 0, n)
		for _, t := range w.entries {
			texts = append(texts, t.phrasings...)
		}
		order := make([]int, n)
		for k := range order {
			order[k] = k
		}
		slices.SortStableFunc(order, func(a, b int) int { return len(texts[a]) - len(texts[b]) })
		runs := make(chan []int)
		var errs = make([]error, workers)
		var ew sync.WaitGroup
		for wi := range workers {
			ew.Go(func() {
				for run := range runs {
					batch := make([]string, len(run))
					for k, at := range run {
						batch[k] = texts[at]
					}
					t0 := time.Now()
					vecs, err := e.Embed(ctx, batch)
					s.clock.since(&s.clock.embed, t0)
					if err == nil && len(vecs) != len(batch) {
						err = fmt.Errorf("the embedder gave %d vectors for %d texts", len(vecs), len(batch))
					}
					if err != nil {
						errs[wi] = err
						cancel()
						continue
					}
					for k, at := range run {
						w.vecs[at] = vecs[k]
					}
				}
			})
		}
	feed:
		for k := 0; k < n; k += embedGroup {
			select {
			case runs <- order[k:min(k+embedGroup, n)]:
			case <-ctx.Done():
				break feed
			}
		}
		close(runs)
		ew.Wait()
		for _, err := range errs {
			if err != nil {
				return finish(kefu.E(op, kefu.Internal, err))
			}
		}
		if ctx.Err() != nil {
			return finish(ctx.Err())
		}
		written <- w
		i = j
	}
	return finish(nil)
}

// writeVectors replaces e's vectors of entries with vecs (their phrasings' in order).
func (s *Store) writeVectors(ctx context.Context, e Embedder, entries []embedTodo, vecs [][]float32) error {
	t0 := time.Now()
	defer s.clock.since(&s.clock.vectors, t0)
	ids := make([]int64, len(entries))
	for i, t := range entries {
		ids[i] = t.id
	}
	id := e.EmbedderID()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM retrieval_vector WHERE entry_id = ANY($1) AND embedder = $2", ids, id); err != nil {
			return err
		}
		i, j, at := 0, 0, 0
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"retrieval_vector"}, []string{"entry_id", "embedder", "phrasing", "embedding"},
			pgx.CopyFromFunc(func() ([]any, error) {
				for i < len(entries) && j >= len(entries[i].phrasings) {
					i, j = i+1, 0
				}
				if i >= len(entries) {
					return nil, nil
				}
				row := []any{entries[i].id, id, entries[i].phrasings[j], pgvector.NewVector(vecs[at])}
				j, at = j+1, at+1
				return row, nil
			}))
		return err
	})
	if err != nil {
		return kefu.E("retrieval.EmbedMissing", kefu.Unavailable, err)
	}
	return nil
}

// indexName is e's HNSW index.
func indexName(e Embedder) string {
	sum := sha256.Sum256([]byte(e.EmbedderID()))
	return fmt.Sprintf("retrieval_vector_hnsw_%x", sum[:6])
}

// ensureIndex creates the HNSW index (cosine) of e's vectors: a partial index on the vectors
// cast to the embedder's dimension, since the column holds vectors of every embedder, of any
// dimension. Old embedders' indexes stay until their vectors go. The build gets the memory to
// hold the graph (else it is many times slower) and the cores.
func (s *Store) ensureIndex(ctx context.Context, e Embedder) error {
	const op = "retrieval.ensureIndex"
	d := embedderDim(e)
	if d == 0 {
		return nil // exact search
	}
	name := indexName(e)
	var exists bool
	if err := s.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", name).Scan(&exists); err != nil {
		return kefu.E(op, kefu.Unavailable, err)
	}
	if exists {
		return nil
	}
	t0 := time.Now()
	defer s.clock.since(&s.clock.index, t0)
	var n int64
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM retrieval_vector WHERE embedder = $1", e.EmbedderID()).Scan(&n); err != nil {
		return kefu.E(op, kefu.Unavailable, err)
	}
	// pgvector's graph takes about the vector and 1 KB of links per element.
	mem := min(max((n*int64(4*d+1024)*5/4)>>20, 64), 4096)
	id := "'" + strings.ReplaceAll(e.EmbedderID(), "'", "''") + "'"
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL maintenance_work_mem = '%dMB'", mem)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL max_parallel_maintenance_workers = %d", runtime.NumCPU())); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %s ON retrieval_vector USING hnsw ((embedding::vector(%d)) vector_cosine_ops) WHERE embedder = %s`,
			name, d, id))
		return err
	})
	if err != nil {
		return kefu.E(op, kefu.Unavailable, err)
	}
	if n >= bulkVectors {
		s.log.InfoContext(ctx, "built the HNSW index", "vectors", n, "seconds", time.Since(t0).Seconds())
	}
	return nil
}
