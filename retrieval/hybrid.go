package retrieval

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	pgvector "github.com/pgvector/pgvector-go"

	"github.com/kefu-dev/kefu"
)

// Search modes.
const (
	ModeDense   = "dense"   // vectors only
	ModeLexical = "lexical" // BM25 only
	ModeHybrid  = "hybrid"  // both, fused by reciprocal rank
)

// SearchOptions tune how entries are found.
type SearchOptions struct {
	Mode        string  // ModeHybrid by default
	DenseWeight float64 // weight of the dense ranking in the fusion
	LexWeight   float64 // weight of the lexical ranking
	RRFK        float64 // reciprocal-rank constant: a hit at rank r adds weight/(RRFK+r)
	Candidates  int     // how many keys each method proposes
	BM25K1      float64
	BM25B       float64
	// Fallback is the language an entry is given in when it has none in the customer's
	// (default English).
	Fallback string
}

func (o SearchOptions) fallback() string {
	if o.Fallback == "" {
		return "en"
	}
	return o.Fallback
}

// DefaultSearch is hybrid with equal weights and the usual constants.
var DefaultSearch = SearchOptions{Mode: ModeHybrid, DenseWeight: 1, LexWeight: 1, RRFK: 60, Candidates: 32, BM25K1: 1.2, BM25B: 0.75}

// SetSearch changes how the store searches (commands that compare the modes use it).
func (s *Store) SetSearch(o SearchOptions) { s.opts = o }

// keyScore is one method's score of a topic (all languages of an entry share its key).
type keyScore struct {
	key   string
	score float64
}

func (s *Store) search(ctx context.Context, db querier, question, lang string, k int) ([]hit, error) {
	ev, err := s.find(ctx, db, question, lang, k)
	return ev.hits, err
}

// find searches and keeps what the answer decision needs besides the hits.
func (s *Store) find(ctx context.Context, db querier, question, lang string, k int) (findings, error) {
	const op = "retrieval.Search"
	ev := findings{question: question}
	o := s.opts
	sp := s.space()
	vecs, err := sp.embedder.Embed(ctx, []string{question})
	if err != nil {
		return ev, kefu.E(op, kefu.Internal, err)
	}
	// Both rankings go to PostgreSQL in one round trip, each with the entries of its topics
	// (in lang where they have it). The dense one always runs: its cosine is the answer's
	// confidence, whatever ranks it.
	b := &pgx.Batch{}
	// An HNSW scan returns at most ef_search rows: it must be at least the phrasings asked for.
	b.Queue(`SELECT set_config('hnsw.ef_search', $1, false)`, fmt.Sprint(max(40, o.Candidates*4)))
	var dense, lexical []rankedEntry
	var denseErr, lexErr error
	b.Queue(sp.denseQuery, pgvector.NewVector(vecs[0]), o.Candidates*4, lang, o.fallback()).Query(func(rows pgx.Rows) error {
		dense, denseErr = collectRanked(rows, o.Candidates, lang)
		return nil
	})
	if o.Mode != ModeDense {
		if terms := termCounts(Terms(question)); len(terms) > 0 {
			n, avg, err := s.stats.get(ctx, db)
			if err != nil {
				return ev, kefu.E(op, "", err)
			}
			list := make([]string, 0, len(terms))
			for t := range terms {
				list = append(list, t)
			}
			b.Queue(lexicalQuery, list, float64(n), avg, o.BM25K1, o.BM25B, o.Candidates, lang, o.fallback()).Query(func(rows pgx.Rows) error {
				lexical, lexErr = collectRanked(rows, o.Candidates, lang)
				return nil
			})
		}
	}
	if err := db.SendBatch(ctx, b).Close(); err != nil {
		return ev, kefu.E(op, kefu.Unavailable, err)
	}
	if err := errors.Join(denseErr, lexErr); err != nil {
		return ev, kefu.E(op, kefu.Unavailable, err)
	}
	cosine := map[string]float64{}
	entries := map[string]Entry{}
	for _, d := range dense {
		cosine[d.key], entries[d.key] = d.score, d.entry
	}
	for _, l := range lexical {
		entries[l.key] = l.entry
	}
	var ranked []keyScore
	switch o.Mode {
	case ModeDense:
		for _, d := range dense {
			ranked = append(ranked, keyScore{d.key, d.score})
		}
	case ModeLexical:
		for _, l := range lexical {
			ranked = append(ranked, keyScore{l.key, l.score})
		}
	default:
		fused := map[string]float64{}
		for r, d := range dense {
			fused[d.key] += o.DenseWeight / (o.RRFK + float64(r+1))
		}
		for r, l := range lexical {
			fused[l.key] += o.LexWeight / (o.RRFK + float64(r+1))
		}
		for key, f := range fused {
			ranked = append(ranked, keyScore{key, f})
		}
		sort.Slice(ranked, func(i, j int) bool {
			if ranked[i].score != ranked[j].score {
				return ranked[i].score > ranked[j].score
			}
			return ranked[i].key < ranked[j].key
		})
	}
	if len(ranked) > k {
		ranked = ranked[:k]
	}
	hits := make([]hit, len(ranked))
	for i, r := range ranked {
		// A hit's score is the topic's dense cosine: what the answer threshold is measured
		// in, whatever ranked it.
		hits[i] = hit{entry: entries[r.key], score: cosine[r.key]}
	}
	ev.hits = hits
	if len(dense) > 0 {
		ev.denseTop = dense[0].key
	}
	if len(lexical) > 0 {
		ev.lexTop = lexical[0].key
	}
	return ev, nil
}

// lexicalSQL ranks topics by BM25 over their terms: $1 the query's terms, $2 the number of
// entries, $3 their mean length, $4 k1, $5 b, $6 how many topics.
const lexicalSQL = `
WITH df AS (
    SELECT term, count(*)::float8 AS df FROM retrieval_posting WHERE term = ANY($1) GROUP BY term
), scored AS (
    SELECT p.entry_id,
           sum(ln(1 + ($2 - df.df + 0.5) / (df.df + 0.5)) * p.tf * ($4 + 1)
               / (p.tf + $4 * (1 - $5 + $5 * e.lex_len / $3))) AS score
    FROM retrieval_posting p JOIN df USING (term) JOIN retrieval_entry e ON e.id = p.entry_id
    WHERE p.term = ANY($1)
    GROUP BY p.entry_id
)
SELECT e.key, max(s.score) AS score
FROM scored s JOIN retrieval_entry e ON e.id = s.entry_id
GROUP BY e.key ORDER BY score DESC, e.key LIMIT $6`

// lexicalQuery is lexicalSQL with each topic's entry, in the language given as $7.
var lexicalQuery = withEntries(lexicalSQL, 7)

// withEntries wraps a query of (key, score) rows so that each row also carries the topic's
// entry in the language given as parameter $langParam, else in the fallback language (the
// next parameter), else in any.
func withEntries(rankSQL string, langParam int) string {
	return fmt.Sprintf(`
WITH ranked AS (%s)
SELECT r.key, r.score, e.id, e.language, e.title, e.question, e.alternates, e.answer, e.link, e.version, e.kind, e.parent
FROM ranked r CROSS JOIN LATERAL (
    SELECT * FROM retrieval_entry x WHERE x.key = r.key
    ORDER BY (x.language = $%d) DESC, (x.language = $%d) DESC, x.language LIMIT 1
) e
ORDER BY r.score DESC, r.key`, rankSQL, langParam, langParam+1)
}

// rankedEntry is a topic a method ranked, with its entry.
type rankedEntry struct {
	key   string
	score float64
	entry Entry
}

// collectRanked reads up to n ranked topics. A document's passage exists in one language
// only, with no translation to fall back on, and is left out unless it is in one of langs
// (the customer's).
func collectRanked(rows pgx.Rows, n int, langs ...string) ([]rankedEntry, error) {
	defer rows.Close()
	var out []rankedEntry
	for rows.Next() {
		var r rankedEntry
		e := &r.entry
		if err := rows.Scan(&r.key, &r.score, &e.ID, &e.Language, &e.Title, &e.Question, &e.Alternates, &e.Answer, &e.Link,
			&e.Version, &e.Kind, &e.Parent); err != nil {
			return nil, err
		}
		e.Key = r.key
		if e.Kind == kindPassage && !slices.Contains(langs, e.Language) {
			continue
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) > n {
		out = out[:n]
	}
	return out, nil
}

// indexLexical replaces an entry's terms.
func indexLexical(ctx context.Context, tx pgx.Tx, e Entry) error {
	text := e.Title + "\n" + e.Question + "\n" + e.Answer
	for _, a := range e.Alternates {
		text += "\n" + a
	}
	terms := Terms(text)
	b := &pgx.Batch{}
	b.Queue("DELETE FROM retrieval_posting WHERE entry_id = $1", e.ID)
	tf := termCounts(terms)
	words := make([]string, 0, len(tf))
	counts := make([]int32, 0, len(tf))
	for t, c := range tf {
		words = append(words, t)
		counts = append(counts, int32(c))
	}
	b.Queue(`INSERT INTO retrieval_posting (term, entry_id, tf) SELECT t, $2, c FROM unnest($1::text[], $3::int[]) AS u(t, c)`,
		words, e.ID, counts)
	b.Queue("UPDATE retrieval_entry SET lex_len = $2 WHERE id = $1", e.ID, max(len(terms), 1))
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return kefu.E("retrieval.indexLexical", kefu.Unavailable, fmt.Errorf("entry %d: %w", e.ID, err))
	}
	return nil
}

// indexMissingLexical indexes entries stored before the lexical index existed.
func (s *Store) indexMissingLexical(ctx context.Context) error {
	rows, err := s.pool.Query(ctx, `SELECT id, title, question, alternates, answer FROM retrieval_entry WHERE lex_len = 0`)
	if err != nil {
		return kefu.E("retrieval.indexMissingLexical", kefu.Unavailable, err)
	}
	entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Entry, error) {
		var e Entry
		err := r.Scan(&e.ID, &e.Title, &e.Question, &e.Alternates, &e.Answer)
		return e, err
	})
	if err != nil || len(entries) == 0 {
		return err
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, e := range entries {
			if err := indexLexical(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	})
	s.stats.invalidate()
	return err
}

// lexStats caches BM25's corpus figures (entries, mean length) for a few seconds: counting
// them on every search would cost more than the search.
type lexStats struct {
	mu   sync.Mutex
	at   time.Time
	n    int
	mean float64
}

func (l *lexStats) invalidate() {
	l.mu.Lock()
	l.at = time.Time{}
	l.mu.Unlock()
}

func (l *lexStats) get(ctx context.Context, db querier) (int, float64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Since(l.at) < 10*time.Second {
		return l.n, l.mean, nil
	}
	rows, err := db.Query(ctx, `SELECT count(*), coalesce(avg(lex_len), 1)::float8 FROM retrieval_entry WHERE lex_len > 0`)
	if err != nil {
		return 0, 0, kefu.E("retrieval.lexStats", kefu.Unavailable, err)
	}
	defer rows.Close()
	if rows.Next() {
		if err := rows.Scan(&l.n, &l.mean); err != nil {
			return 0, 0, kefu.E("retrieval.lexStats", kefu.Unavailable, err)
		}
	}
	l.at = time.Now()
	return l.n, l.mean, rows.Err()
}

// denseSQL is the nearest-phrasings query. With an embedder of known dimension it is written
// to match the embedder's HNSW index (ensureIndex): the same cast expression and the same
// predicate, with the embedder's id as a literal, which the planner needs to use a partial
// index. $1 is the query vector, $2 the number of phrasings.
func denseSQL(e Embedder) string {
	id := "'" + strings.ReplaceAll(e.EmbedderID(), "'", "''") + "'"
	vec := "v.embedding"
	if d := embedderDim(e); d > 0 {
		vec = fmt.Sprintf("(v.embedding::vector(%d))", d)
	}
	return `
WITH near AS (
    SELECT v.entry_id, 1 - (` + vec + ` <=> $1) AS score
    FROM retrieval_vector v
    WHERE v.embedder = ` + id + `
    ORDER BY ` + vec + ` <=> $1
    LIMIT $2
)
SELECT e.key, max(n.score) AS score
FROM near n JOIN retrieval_entry e ON e.id = n.entry_id
GROUP BY e.key ORDER BY score DESC, e.key`
}

func embedderDim(e Embedder) int {
	if d, ok := e.(interface{ Dim() int }); ok && d.Dim() > 0 && d.Dim() <= 2000 {
		return d.Dim()
	}
	return 0
}

// ensureIndex creates the HNSW index (cosine) of e's vectors: a partial
// index on the vectors cast to the embedder's dimension, since the column holds vectors of
// every embedder, of any dimension. Old embedders' indexes stay until their vectors go.
func (s *Store) ensureIndex(ctx context.Context, e Embedder) error {
	d := embedderDim(e)
	if d == 0 {
		return nil // exact search
	}
	sum := sha256.Sum256([]byte(e.EmbedderID()))
	name := fmt.Sprintf("retrieval_vector_hnsw_%x", sum[:6])
	id := "'" + strings.ReplaceAll(e.EmbedderID(), "'", "''") + "'"
	q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %s ON retrieval_vector USING hnsw ((embedding::vector(%d)) vector_cosine_ops) WHERE embedder = %s`,
		name, d, id)
	if _, err := s.pool.Exec(ctx, q); err != nil {
		return kefu.E("retrieval.ensureIndex", kefu.Unavailable, err)
	}
	return nil
}
