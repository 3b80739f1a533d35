package retrieval

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	pgvector "github.com/pgvector/pgvector-go"

	"github.com/kefu-dev/kefu"
)

// ImportTimings is the time a store's writes spent in each step of importing, added up since
// the store was made: what `kefu kb bench` reports of an import. The rest of an import's time
// is writing the entries themselves.
type ImportTimings struct {
	Lexical   time.Duration `json:"lexical"`   // terms made and postings written
	Embedding time.Duration `json:"embedding"` // from the first phrasing embedded to the last vector written
	Embed     time.Duration `json:"embed"`     // the embedder's time in it, summed over its workers
	Vectors   time.Duration `json:"vectors"`   // the vectors' writer's time in it
	Index     time.Duration `json:"index"`     // HNSW index built or rebuilt
}

// importClock adds up ImportTimings; safe for concurrent use.
type importClock struct {
	lexical, embedding, embed, vectors, index atomic.Int64
}

func (c *importClock) since(d *atomic.Int64, t0 time.Time) { d.Add(int64(time.Since(t0))) }

// ImportTimings reports where the store's imports spent their time so far.
func (s *Store) ImportTimings() ImportTimings {
	c := &s.clock
	return ImportTimings{Lexical: time.Duration(c.lexical.Load()), Embedding: time.Duration(c.embedding.Load()), Embed: time.Duration(c.embed.Load()),
		Vectors: time.Duration(c.vectors.Load()), Index: time.Duration(c.index.Load())}
}

// SearchSample is one search of BenchSearch.
type SearchSample struct {
	Ms   float64  // the search's time in milliseconds
	Keys []string // the topics found, best first
}

// BenchSearch runs the store's search (with its SearchOptions) for each query, one after
// another, and times each. With vecs, one per query from the serving embedder, the questions
// are not embedded again: the time is the database's and the fusion's alone.
func (s *Store) BenchSearch(ctx context.Context, queries []EvalQuery, vecs [][]float32, k int) ([]SearchSample, error) {
	if vecs != nil && len(vecs) != len(queries) {
		return nil, kefu.Errorf("retrieval.BenchSearch", kefu.Invalid, "%d vectors for %d queries", len(vecs), len(queries))
	}
	out := make([]SearchSample, len(queries))
	sp := s.space()
	for i, q := range queries {
		t0 := time.Now()
		var f findings
		var err error
		if vecs != nil {
			f, err = s.findVec(ctx, s.pool, sp, q.Query, vecs[i], q.Language, k)
		} else {
			f, err = s.find(ctx, s.pool, q.Query, q.Language, k)
		}
		out[i].Ms = float64(time.Since(t0).Nanoseconds()) / 1e6
		if err != nil {
			return nil, err
		}
		for _, h := range f.hits {
			out[i].Keys = append(out[i].Keys, h.entry.Key)
		}
	}
	return out, nil
}

// RecallPoint is the dense index against an exact scan at one ef_search.
type RecallPoint struct {
	EFSearch int     `json:"ef_search"`
	Recall   float64 `json:"recall"` // share of the exact k nearest phrasings the index found
	P50ms    float64 `json:"p50_ms"` // the index scan's time (k nearest, no entries)
	P99ms    float64 `json:"p99_ms"`
}

// DenseRecall measures the serving embedder's HNSW index: for each vector, the k nearest
// phrasings by an index scan at each ef_search in efs against the k nearest by an exact scan
// (the same query with index scans off), over vectors of the store's embedder only.
func (s *Store) DenseRecall(ctx context.Context, vecs [][]float32, k int, efs []int) (exactMs []float64, points []RecallPoint, err error) {
	const op = "retrieval.DenseRecall"
	q := nearestSQL(s.space().embedder)
	exact := make([]map[int64]bool, len(vecs))
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL enable_indexscan = off"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SET LOCAL enable_bitmapscan = off"); err != nil {
			return err
		}
		for i, v := range vecs {
			t0 := time.Now()
			ids, err := nearestIDs(ctx, tx, q, v, k)
			if err != nil {
				return err
			}
			exactMs = append(exactMs, float64(time.Since(t0).Nanoseconds())/1e6)
			exact[i] = map[int64]bool{}
			for _, id := range ids {
				exact[i][id] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, kefu.E(op, kefu.Unavailable, err)
	}
	for _, ef := range efs {
		p := RecallPoint{EFSearch: ef}
		var lat []float64
		var found, want int
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL hnsw.ef_search = %d", ef)); err != nil {
				return err
			}
			for i, v := range vecs {
				t0 := time.Now()
				ids, err := nearestIDs(ctx, tx, q, v, k)
				if err != nil {
					return err
				}
				lat = append(lat, float64(time.Since(t0).Nanoseconds())/1e6)
				for _, id := range ids {
					if exact[i][id] {
						found++
					}
				}
				want += len(exact[i])
			}
			return nil
		})
		if err != nil {
			return nil, nil, kefu.E(op, kefu.Unavailable, err)
		}
		slices.Sort(lat)
		p.P50ms, p.P99ms = quantile(lat, 0.5), quantile(lat, 0.99)
		if want > 0 {
			p.Recall = round4(float64(found) / float64(want))
		}
		points = append(points, p)
	}
	return exactMs, points, nil
}

// nearestSQL is the dense query's index scan alone: the ids of the $2 nearest phrasings.
func nearestSQL(e Embedder) string {
	vec, id := vectorExpr(e)
	return `SELECT v.id FROM retrieval_vector v WHERE v.embedder = ` + id + ` ORDER BY ` + vec + ` <=> $1 LIMIT $2`
}

func nearestIDs(ctx context.Context, tx pgx.Tx, q string, v []float32, k int) ([]int64, error) {
	rows, err := tx.Query(ctx, q, pgvector.NewVector(v), k)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

// quantile of sorted values (nearest rank).
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*q+0.9999999) - 1
	return round4(sorted[max(0, min(i, len(sorted)-1))])
}

// ExplainSearch runs a search's queries under EXPLAIN ANALYZE and returns their plans, the
// dense query's first (and the lexical one's when there is one). vec is the question's
// embedding by the serving embedder.
func (s *Store) ExplainSearch(ctx context.Context, question string, vec []float32, lang string) ([]string, error) {
	var plans []string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		dq, lq, err := s.searchStatements(ctx, tx, s.space(), Terms(question), vec, lang)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL hnsw.ef_search = %d", s.opts.EF())); err != nil {
			return err
		}
		for _, st := range []*statement{dq, lq} {
			if st == nil {
				continue
			}
			rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "+st.sql, st.args...)
			if err != nil {
				return err
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			plans = append(plans, strings.Join(lines, "\n"))
		}
		return nil
	})
	if err != nil {
		return nil, kefu.E("retrieval.ExplainSearch", kefu.Unavailable, err)
	}
	return plans, nil
}
