package retrieval

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"runtime"
	"slices"
	"sort"
	"strconv"
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
	// LexicalDepth is how many postings of each query term lexical search reads, best impact
	// first (0: DefaultLexicalDepth): a term in more entries than that weighs only in the
	// entries it weighs most in.
	LexicalDepth int
	// EFSearch is HNSW's ef_search: how many candidates the index scan keeps, and so the most
	// phrasings it returns (0: four per candidate, at least 40).
	EFSearch int
}

// DefaultLexicalDepth is LexicalDepth's default.
const DefaultLexicalDepth = 256

func (o SearchOptions) depth() int {
	if o.LexicalDepth > 0 {
		return o.LexicalDepth
	}
	return DefaultLexicalDepth
}

// EF is the ef_search the options search with.
func (o SearchOptions) EF() int {
	if o.EFSearch > 0 {
		return o.EFSearch
	}
	return max(40, o.Candidates*4)
}

func (o SearchOptions) fallback() string {
	if o.Fallback == "" {
		return "en"
	}
	return o.Fallback
}

// DefaultSearch is hybrid with equal weights and the usual RRF constant. BM25's k1 and b are 1
// and 0 (no length normalisation): what every measurement so far was made with, since the
// lexical query once took them as integers (1.2 and 0.75 became 1 and 0). The usual 1.2 and
// 0.75 rank the demo's queries a little differently (hybrid recall@5 0.951 against 0.942,
// lexical 0.916 against 0.918).
var DefaultSearch = SearchOptions{Mode: ModeHybrid, DenseWeight: 1, LexWeight: 1, RRFK: 60, Candidates: 32, BM25K1: 1, BM25B: 0}

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
	sp := s.space()
	vecs, err := sp.embedder.Embed(ctx, []string{question})
	if err != nil {
		return findings{question: question}, kefu.E("retrieval.Search", kefu.Internal, err)
	}
	return s.findVec(ctx, db, sp, question, vecs[0], lang, k)
}

// findVec is find with the question's embedding in sp made already.
func (s *Store) findVec(ctx context.Context, db querier, sp *space, question string, vec []float32, lang string, k int) (findings, error) {
	const op = "retrieval.Search"
	ev := findings{question: question, terms: Terms(question), entryTerms: s.entryTermsOf}
	o := s.opts
	// Both rankings go to PostgreSQL in one round trip, each with the entries of its topics
	// (in lang where they have it). The dense one always runs: its cosine is the answer's
	// confidence, whatever ranks it.
	dq, lq, err := s.searchStatements(ctx, db, sp, ev.terms, vec, lang)
	if err != nil {
		return ev, err
	}
	b := &pgx.Batch{}
	// An HNSW scan returns at most ef_search rows: it must be at least the phrasings asked for.
	b.Queue(`SELECT set_config('hnsw.ef_search', $1, false)`, strconv.Itoa(o.EF()))
	var dense, lexical []rankedEntry
	var denseErr, lexErr error
	b.Queue(dq.sql, dq.args...).Query(func(rows pgx.Rows) error {
		dense, denseErr = collectRanked(rows)
		return nil
	})
	if lq != nil {
		if lq.generic {
			// Local to the transaction (the batch's implicit one, or the caller's: AnswerTx),
			// and put back as it was right after the statement.
			b.Queue(`SELECT set_config('kefu.plan_cache_mode', current_setting('plan_cache_mode'), true),
       set_config('plan_cache_mode', 'force_generic_plan', true)`)
		}
		b.Queue(lq.sql, lq.args...).Query(func(rows pgx.Rows) error {
			lexical, lexErr = collectRanked(rows)
			return nil
		})
		if lq.generic {
			b.Queue(`SELECT set_config('plan_cache_mode', current_setting('kefu.plan_cache_mode'), true)`)
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

// statement is a query and its arguments.
type statement struct {
	sql  string
	args []any
	// generic: run it with its prepared statement's generic plan (see genericLexicalBelow).
	generic bool
}

// genericLexicalBelow is the corpus size (entries) below which the lexical statement runs with
// its generic plan. PostgreSQL's plan cache weighs the generic plan by estimates made without
// the arguments (an array of terms of unknown length), and with the tables analyzed it kept
// planning the statement anew on 80–100% of calls:
// on the 95-entry demo knowledge base ≈1.3 ms of planning for ≈0.6 ms of execution, measured
// under load (pg_stat_statements), against ≈0.02 ms of planning and ≈0.35–0.6 ms of
// execution with the generic plan. On large corpora the custom plans pay for themselves:
// forcing the generic plan was measured slower from 2,000 entries up (kefu kb bench: lexical
// p50 6.8 → 9.1 ms at 2,000 entries, 14.7 → 17.4 ms at 20,000); at 900 entries the two were
// even (lexical p50 4.6 ms generic, 3.8 ms custom, in runs whose dense searches differed by as
// much: 3.0 and 2.4 ms).
const genericLexicalBelow = 500

// searchStatements are a search's dense query and its lexical one (nil when the mode has
// none or no term of the question is in any entry).
func (s *Store) searchStatements(ctx context.Context, db querier, sp *space, qterms []string, vec []float32, lang string) (dense, lexical *statement, err error) {
	o := s.opts
	dense = &statement{sql: sp.denseQuery, args: []any{pgvector.NewVector(vec), o.Candidates * 4, lang, o.fallback(), o.Candidates}}
	if o.Mode == ModeDense {
		return dense, nil, nil
	}
	terms := termCounts(qterms)
	if len(terms) == 0 {
		return dense, nil, nil
	}
	// In a fixed order: scores are sums in this order, and a sum's last bit can break a tie.
	list := slices.Sorted(maps.Keys(terms))
	n, avg, df, err := s.stats.get(ctx, db, s.pool, list)
	if err != nil {
		return nil, nil, kefu.E("retrieval.Search", "", err)
	}
	// Terms no entry has are dropped; each other one weighs its idf, and is cut when it is in
	// more entries than are read of it.
	words, idf, cut := list[:0], make([]float64, 0, len(list)), make([]bool, 0, len(list))
	cutWords, cutIDF := []string{}, []float64{}
	for _, t := range list {
		// A term's count may be newer than the corpus's: never more entries than the corpus.
		if d := float64(min(df[t], max(n, 1))); d > 0 {
			words, idf = append(words, t), append(idf, math.Log(1+(float64(max(n, 1))-d+0.5)/(d+0.5)))
			cut = append(cut, df[t] > o.depth())
			if df[t] > o.depth() {
				cutWords, cutIDF = append(cutWords, t), append(cutIDF, idf[len(idf)-1])
			}
		}
	}
	if len(words) == 0 {
		return dense, nil, nil
	}
	return dense, &statement{sql: lexicalQuery, args: []any{words, idf, cut, o.BM25K1, o.BM25B, avg, o.depth(), o.Candidates * 4, o.Candidates,
		lang, o.fallback(), cutWords, cutIDF, o.Candidates}, generic: n < genericLexicalBelow}, nil
}

// lexicalSQL ranks topics by BM25 over their terms: $1 the query's terms, $2 their idf, $3
// whether each is cut (in more entries than $7), $4 k1, $5 b, $6 the entries' mean length,
// $7 how many postings of each term are read, $8 how many entries are ranked, $9 how many
// topics, ($10 and $11 the languages and $14 how many topics are kept, for withEntries), $12
// the cut terms and $13 their idf. A term's postings are read best impact first
// (retrieval_posting_impact), a cut term's only its $7 best, so a common term costs no more
// than a rare one. The entries found (the best by that first score, and the best by the
// uncut terms alone, whose postings were all read) are then scored exactly: their postings
// of the cut terms are looked up one by one (retrieval_posting_entry_term). Without cut
// terms the first score is already exact.
const lexicalSQL = `
WITH hits AS (
    SELECT p.entry_id, q.cut,
           q.idf * p.tf * ($4::float8 + 1) / (p.tf + $4::float8 * (1 - $5::float8 + $5::float8 * p.lex_len / $6::float8)) AS w
    FROM unnest($1::text[], $2::float8[], $3::bool[]) AS q(term, idf, cut)
    CROSS JOIN LATERAL (
        SELECT x.entry_id, x.tf, x.lex_len FROM retrieval_posting x
        WHERE x.term = q.term ORDER BY x.impact DESC LIMIT $7
    ) p
), found AS (
    SELECT entry_id, sum(w) AS score, coalesce(sum(w) FILTER (WHERE NOT cut), 0) AS sure
    FROM hits GROUP BY entry_id
), candidates AS (
    (SELECT entry_id, sure FROM found ORDER BY score DESC, entry_id LIMIT $8)
    UNION
    (SELECT entry_id, sure FROM found ORDER BY sure DESC, entry_id LIMIT $8)
), rest AS (
    SELECT c.entry_id,
           sum(q.idf * p.tf * ($4::float8 + 1) / (p.tf + $4::float8 * (1 - $5::float8 + $5::float8 * p.lex_len / $6::float8))) AS w
    FROM candidates c
    CROSS JOIN unnest($12::text[], $13::float8[]) AS q(term, idf)
    CROSS JOIN LATERAL (
        SELECT x.tf, x.lex_len FROM retrieval_posting x WHERE x.entry_id = c.entry_id AND x.term = q.term
        LIMIT 1 -- there is one; the limit keeps the planner from joining the term's whole list instead
    ) p
    GROUP BY c.entry_id
), scored AS (
    SELECT c.entry_id, c.sure + coalesce(r.w, 0) AS score
    FROM candidates c LEFT JOIN rest r USING (entry_id)
    ORDER BY score DESC LIMIT $8
)
SELECT e.key, max(s.score) AS score
FROM scored s JOIN retrieval_entry e ON e.id = s.entry_id
GROUP BY e.key ORDER BY score DESC, e.key LIMIT $9`

// lexicalQuery is lexicalSQL with each topic's entry, in the language given as $10 (else $11),
// of at most $14 topics.
var lexicalQuery = withEntries(lexicalSQL, 10, 14)

// withEntries wraps a query of (key, score) rows so that each row also carries the topic's
// entry in the language given as parameter $langParam, else in the fallback language (the
// next parameter), else in any, and keeps the best $limitParam topics. A document's passage
// exists in one language only, with no translation to fall back on, and is left out unless it
// is in the customer's. Only the rows kept are sent: the dense ranking has a topic for each
// of up to four times as many phrasings, and reading all their entries was a quarter of what
// a turn allocated.
func withEntries(rankSQL string, langParam, limitParam int) string {
	return fmt.Sprintf(`
WITH ranked AS (%s)
SELECT r.key, r.score, e.id, e.language, e.title, e.question, e.alternates, e.answer, e.link, e.version, e.kind, e.parent
FROM ranked r CROSS JOIN LATERAL (
    SELECT * FROM retrieval_entry x WHERE x.key = r.key
    ORDER BY (x.language = $%[2]d) DESC, (x.language = $%[3]d) DESC, x.language LIMIT 1
) e
WHERE e.kind <> '%[5]s' OR e.language = $%[2]d
ORDER BY r.score DESC, r.key
LIMIT $%[4]d`, rankSQL, langParam, langParam+1, limitParam, kindPassage)
}

// rankedEntry is a topic a method ranked, with its entry.
type rankedEntry struct {
	key   string
	score float64
	entry Entry
}

// collectRanked reads the ranked topics of a query made by withEntries.
func collectRanked(rows pgx.Rows) ([]rankedEntry, error) {
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
		out = append(out, r)
	}
	return out, rows.Err()
}

// Postings are read best impact first: a term's weight in an entry for a reference entry
// length (migration 003), the term-frequency part of BM25 with the default k1 and b.
const (
	impactRefLen = 128
	impactK1     = 1.2
	impactB      = 0.75
)

func impact(tf, length int) float32 {
	return float32(float64(tf) / (float64(tf) + impactK1*(1-impactB+impactB*float64(length)/impactRefLen)))
}

// lexDoc is an entry's terms, ready to be written.
type lexDoc struct {
	terms  []string
	tf     []int32
	length int
}

func lexDocOf(e Entry) lexDoc {
	text := e.Title + "\n" + e.Question + "\n" + e.Answer
	for _, a := range e.Alternates {
		text += "\n" + a
	}
	terms := Terms(text)
	tf := termCounts(terms)
	d := lexDoc{terms: make([]string, 0, len(tf)), tf: make([]int32, 0, len(tf)), length: max(len(terms), 1)}
	for t, c := range tf {
		d.terms = append(d.terms, t)
		d.tf = append(d.tf, int32(c))
	}
	return d
}

// indexLexical replaces the terms of entries (stored, with their ids) in tx. Their terms are
// made on every core, and many entries' postings are written with COPY.
func indexLexical(ctx context.Context, tx pgx.Tx, entries ...Entry) error {
	const op = "retrieval.indexLexical"
	if len(entries) == 0 {
		return nil
	}
	docs := make([]lexDoc, len(entries))
	workers := min(runtime.NumCPU(), (len(entries)+15)/16)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(entries); i += workers {
				docs[i] = lexDocOf(entries[i])
			}
		})
	}
	wg.Wait()
	ids := make([]int64, len(entries))
	lens := make([]int32, len(entries))
	rows := 0
	for i, e := range entries {
		ids[i], lens[i] = e.ID, int32(docs[i].length)
		rows += len(docs[i].terms)
	}
	b := &pgx.Batch{}
	b.Queue("DELETE FROM retrieval_posting WHERE entry_id = ANY($1)", ids)
	b.Queue("UPDATE retrieval_entry e SET lex_len = u.n FROM unnest($1::bigint[], $2::int[]) AS u(id, n) WHERE e.id = u.id", ids, lens)
	if len(entries) == 1 { // one round trip for one entry
		d := docs[0]
		imp := make([]float32, len(d.tf))
		for j, c := range d.tf {
			imp[j] = impact(int(c), d.length)
		}
		b.Queue(`INSERT INTO retrieval_posting (term, entry_id, tf, lex_len, impact)
SELECT t, $2, c, $4, i FROM unnest($1::text[], $3::int[], $5::real[]) AS u(t, c, i)`, d.terms, ids[0], d.tf, d.length, imp)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return kefu.E(op, kefu.Unavailable, fmt.Errorf("entries %d…: %w", ids[0], err))
	}
	if len(entries) == 1 {
		return nil
	}
	i, j := 0, 0 // entry, term
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"retrieval_posting"}, []string{"term", "entry_id", "tf", "lex_len", "impact"},
		pgx.CopyFromFunc(func() ([]any, error) {
			for i < len(docs) && j >= len(docs[i].terms) {
				i, j = i+1, 0
			}
			if i >= len(docs) {
				return nil, nil
			}
			d := docs[i]
			j++
			return []any{d.terms[j-1], ids[i], d.tf[j-1], int32(d.length), impact(int(d.tf[j-1]), d.length)}, nil
		}))
	if err != nil {
		return kefu.E(op, kefu.Unavailable, fmt.Errorf("postings of entries %d…: %w", ids[0], err))
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
		for i := 0; i < len(entries); i += 1000 {
			if err := indexLexical(ctx, tx, entries[i:min(i+1000, len(entries))]...); err != nil {
				return err
			}
		}
		return nil
	})
	s.stats.invalidate()
	return err
}

// lexStats caches BM25's corpus figures: the number of entries and their mean length, and
// each term's document frequency. Counting them on every search would cost more than the
// search. A figure older than its time to live is still used while a background count
// refreshes it, so that no search waits for a count it has made before; invalidate (after
// the store's own writes) marks every figure old, and forgets the terms no entry had, so
// that a term just written is searched for at once.
type lexStats struct {
	mu         sync.Mutex
	at         time.Time // when n and mean were counted; zero: never
	n          int
	mean       float64
	stale      bool // n and mean are old: being counted again
	gen        int  // invalidations so far: a count that began before one does not make the figures fresh
	df         map[string]dfCount
	refreshing bool // a background count runs
}

type dfCount struct {
	n  int
	at time.Time
}

const (
	corpusTTL = 10 * time.Second
	dfTTL     = time.Minute
	zeroTTL   = 5 * time.Second // a term no entry had: counted again (cheaply) before it is used after this
	// syncCorpusBelow is the number of entries below which a write has the corpus counted
	// again before the next search rather than in the background.
	syncCorpusBelow = 10_000
	maxDFCached     = 200_000
)

func (l *lexStats) invalidate() {
	l.mu.Lock()
	l.stale = true
	if l.n < syncCorpusBelow {
		l.at = time.Time{} // counted again before the next search: cheap, and a few entries change a small corpus much
	}
	l.gen++
	for t, c := range l.df {
		if c.n == 0 {
			delete(l.df, t) // counted again before its next use: a written entry may have it now
			continue
		}
		c.at = time.Time{}
		l.df[t] = c
	}
	l.mu.Unlock()
}

// get returns the number of entries, their mean length and the document frequency of terms.
// Counts it has never made are made with db (a transaction's view, when db is one), old ones
// again in the background with pool.
func (l *lexStats) get(ctx context.Context, db querier, pool querier, terms []string) (int, float64, map[string]int, error) {
	const op = "retrieval.lexStats"
	now := time.Now()
	l.mu.Lock()
	df := make(map[string]int, len(terms))
	var missing, old []string
	for _, t := range terms {
		c, ok := l.df[t]
		switch {
		case !ok || (c.n == 0 && now.Sub(c.at) > zeroTTL):
			missing = append(missing, t)
		case now.Sub(c.at) > dfTTL:
			old = append(old, t)
			fallthrough
		default:
			df[t] = c.n
		}
	}
	needCorpus := l.at.IsZero()
	refresh := !l.refreshing && (len(old) > 0 || (!needCorpus && (l.stale || now.Sub(l.at) > corpusTTL)))
	gen := l.gen
	if refresh {
		l.refreshing = true
	}
	l.mu.Unlock()
	if refresh {
		go l.refresh(pool, old, gen)
	}
	if needCorpus || len(missing) > 0 {
		b := &pgx.Batch{}
		var n int
		var mean float64
		if needCorpus {
			b.Queue(`SELECT count(*), coalesce(avg(lex_len), 1)::float8 FROM retrieval_entry WHERE lex_len > 0`).QueryRow(func(r pgx.Row) error {
				return r.Scan(&n, &mean)
			})
		}
		counted := map[string]int{}
		if len(missing) > 0 {
			b.Queue(dfSQL, missing).Query(func(rows pgx.Rows) error {
				return countRows(rows, counted)
			})
		}
		if err := db.SendBatch(ctx, b).Close(); err != nil {
			return 0, 0, nil, kefu.E(op, kefu.Unavailable, err)
		}
		l.mu.Lock()
		if needCorpus {
			l.n, l.mean, l.at = n, mean, time.Now()
		}
		l.putDF(missing, counted, time.Now())
		l.mu.Unlock()
		for _, t := range missing {
			df[t] = counted[t]
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n, l.mean, df, nil
}

// dfSQL counts the entries of each of $1's terms (through the impact index alone).
const dfSQL = `SELECT term, count(*) FROM retrieval_posting WHERE term = ANY($1) GROUP BY term`

func countRows(rows pgx.Rows, into map[string]int) error {
	defer rows.Close()
	for rows.Next() {
		var t string
		var n int
		if err := rows.Scan(&t, &n); err != nil {
			return err
		}
		into[t] = n
	}
	return rows.Err()
}

// putDF records counts of terms (0 for those counted has not), made at at. Called locked.
func (l *lexStats) putDF(terms []string, counted map[string]int, at time.Time) {
	if l.df == nil || len(l.df)+len(terms) > maxDFCached {
		l.df = make(map[string]dfCount, len(terms))
	}
	for _, t := range terms {
		l.df[t] = dfCount{n: counted[t], at: at}
	}
}

// refresh counts the corpus and the old terms again, in the background.
func (l *lexStats) refresh(pool querier, old []string, gen int) {
	defer func() {
		l.mu.Lock()
		l.refreshing = false
		l.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n int
	var mean float64
	counted := map[string]int{}
	b := &pgx.Batch{}
	b.Queue(`SELECT count(*), coalesce(avg(lex_len), 1)::float8 FROM retrieval_entry WHERE lex_len > 0`).QueryRow(func(r pgx.Row) error {
		return r.Scan(&n, &mean)
	})
	if len(old) > 0 {
		b.Queue(dfSQL, old).Query(func(rows pgx.Rows) error { return countRows(rows, counted) })
	}
	if err := pool.SendBatch(ctx, b).Close(); err != nil {
		return // the old figures stay; the next search tries again
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if gen != l.gen {
		return // written to since: counted again by a later search
	}
	l.n, l.mean, l.at, l.stale = n, mean, time.Now(), false
	l.putDF(old, counted, time.Now())
}

// denseSQL is the nearest-phrasings query. With an embedder of known dimension it is written
// to match the embedder's HNSW index (ensureIndex): the same cast expression and the same
// predicate, with the embedder's id as a literal, which the planner needs to use a partial
// index. $1 is the query vector, $2 the number of phrasings.
func denseSQL(e Embedder) string {
	vec, id := vectorExpr(e)
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

// vectorExpr is how queries write a phrasing's vector and e's id so that the planner matches
// them to e's partial HNSW index (ensureIndex).
func vectorExpr(e Embedder) (vec, id string) {
	id = "'" + strings.ReplaceAll(e.EmbedderID(), "'", "''") + "'"
	vec = "v.embedding"
	if d := embedderDim(e); d > 0 {
		vec = fmt.Sprintf("(v.embedding::vector(%d))", d)
	}
	return vec, id
}

func embedderDim(e Embedder) int {
	if d, ok := e.(interface{ Dim() int }); ok && d.Dim() > 0 && d.Dim() <= 2000 {
		return d.Dim()
	}
	return 0
}
