package retrieval

import (
	"context"
	"embed"
	"io/fs"
	"log/slog"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kefu-dev/kefu"
	"github.com/kefu-dev/kefu/internal/migrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations are the tables retrieval owns.
func Migrations() migrate.Source {
	sub, _ := fs.Sub(migrations, "migrations")
	return migrate.Source{Name: "retrieval", FS: sub}
}

// Embedder turns texts into vectors.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	EmbedderID() string // names the vector space: the model and its version
}

// Entry is one knowledge entry in one language.
type Entry struct {
	ID         int64    `json:"id"`
	Key        string   `json:"key"`
	Language   string   `json:"language"`
	Title      string   `json:"title"`
	Question   string   `json:"question"`
	Alternates []string `json:"alternates"`
	Answer     string   `json:"answer"`
	Link       string   `json:"link"`
	Version    int      `json:"version"`
	Kind       string   `json:"kind,omitempty"`   // faq (the default) or passage
	Parent     string   `json:"parent,omitempty"` // a passage's document
	Tags       []string `json:"tags,omitempty"`
}

// Source says where an answer came from.
type Source struct {
	EntryID  int64  `json:"entry_id"`
	Key      string `json:"key"`
	Title    string `json:"title"`
	Language string `json:"language"`
	Version  int    `json:"version"`
	Link     string `json:"link,omitempty"`
}

// Answer is the knowledge base's reply to a question.
type Answer struct {
	Found bool    `json:"found"` // Score reached the threshold
	Text  string  `json:"text"`
	Score float64 `json:"score"` // cosine similarity of the best phrasing
	// Confidence is how sure the store is that the knowledge answers the question: the
	// answerability model's probability, or the cosine without one.
	Confidence float64  `json:"confidence"`
	Source     Source   `json:"source"`
	Related    []string `json:"related,omitempty"` // questions of the next best entries
	// Evidence is the entries found, the answering one first: the passages a Generator
	// words an answer from.
	Evidence []Evidence `json:"-"`
}

// DefaultThreshold is the cosine similarity below which the knowledge base says it is not
// sure rather than guess.
const DefaultThreshold = 0.6

// Store is the knowledge base in PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
	// sp is the vector space the store serves from; Reembed swaps it once a new one is
	// complete.
	sp        atomic.Pointer[space]
	reembed   atomic.Pointer[ReembedStatus]
	target    reembedTarget
	threshold float64
	log       *slog.Logger
	opts      SearchOptions
	stats     lexStats
	related   relatedCache
	terms     *lru.Cache[entryVersion, map[string]bool] // entryTermsOf
	clock     importClock
}

// space is an embedder with what depends on it.
type space struct {
	embedder Embedder
	// denseQuery is the nearest-phrasings query with entries (language $3, else $4; $5
	// topics kept), written once per embedder.
	denseQuery string
	// answerability decides whether to answer at all; nil: the threshold on cosine alone.
	answerability *Answerability
}

func newSpace(e Embedder, a *Answerability) *space {
	return &space{embedder: e, denseQuery: withEntries(denseSQL(e), 3, 5), answerability: a}
}

// space is what the store serves from now.
func (s *Store) space() *space { return s.sp.Load() }

// NewStore returns a store that answers when the best phrasing's cosine similarity reaches
// threshold.
func NewStore(pool *pgxpool.Pool, e Embedder, threshold float64, log *slog.Logger) *Store {
	terms, _ := lru.New[entryVersion, map[string]bool](4096) // fails only for a size ≤ 0
	s := &Store{pool: pool, threshold: threshold, log: log.With("component", "retrieval"), opts: DefaultSearch, terms: terms}
	s.sp.Store(newSpace(e, nil))
	return s
}

// Upsert stores entries (matched by key and language) and their vectors, each as a new
// published version (an open draft of the entry is discarded: the upsert wins).
func (s *Store) Upsert(ctx context.Context, entries []Entry) error {
	return s.upsert(ctx, "system", entries)
}

func (s *Store) upsert(ctx context.Context, actor string, entries []Entry) error {
	const op = "retrieval.Upsert"
	for i, e := range entries {
		if e.Key == "" || e.Language == "" || e.Answer == "" || e.Question == "" {
			return kefu.Errorf(op, kefu.Invalid, "entry %d needs a key, a language, a question and an answer", i+1)
		}
	}
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		if err := s.upsertTx(ctx, tx, actor, entries); err != nil {
			return err
		}
		return audit(ctx, tx, actor, "upsert", "", "", 0, map[string]any{"entries": len(entries)})
	})
	if err != nil {
		return err
	}
	_, err = s.EmbedMissing(ctx)
	return err
}

// upsertTx writes entries in tx (without vectors: EmbedMissing makes them after commit), in
// one round trip, then their terms.
func (s *Store) upsertTx(ctx context.Context, tx pgx.Tx, actor string, entries []Entry) error {
	const op = "retrieval.Upsert"
	b := &pgx.Batch{}
	stored := make([]Entry, len(entries))
	for i, e := range entries {
		// The new version is recorded as a published revision, and an open draft discarded.
		const q = `
WITH d AS (
    UPDATE retrieval_revision SET state = 'discarded', updated_at = now()
    WHERE key = $1 AND language = $2 AND state = 'draft'
), r AS (
    INSERT INTO retrieval_revision (key, language, version, state, title, question, alternates, answer, link, tags,
                                    author, published_at, published_by)
    SELECT $1, $2, coalesce(max(version), 0) + 1, 'published', $3, $4, $5, $6, $7, $8, $9, now(), $9
    FROM retrieval_revision WHERE key = $1 AND language = $2
    RETURNING version
)
INSERT INTO retrieval_entry (key, language, title, question, alternates, answer, link, tags, version)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, r.version FROM r
ON CONFLICT (key, language) DO UPDATE
SET kind = 'faq', parent = '', title = EXCLUDED.title, question = EXCLUDED.question, alternates = EXCLUDED.alternates,
    answer = EXCLUDED.answer, link = EXCLUDED.link, tags = EXCLUDED.tags, version = EXCLUDED.version, updated_at = now()
RETURNING id`
		stored[i] = e
		b.Queue(q, e.Key, e.Language, e.Title, e.Question, nonNil(e.Alternates), e.Answer, e.Link,
			nonNil(e.Tags), actor).QueryRow(func(r pgx.Row) error { return r.Scan(&stored[i].ID) })
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return kefu.E(op, kefu.Unavailable, err)
	}
	ids := make([]int64, len(stored))
	for i, e := range stored {
		ids[i] = e.ID
	}
	if _, err := tx.Exec(ctx, "DELETE FROM retrieval_vector WHERE entry_id = ANY($1)", ids); err != nil {
		return kefu.E(op, kefu.Unavailable, err)
	}
	t0 := time.Now()
	if err := indexLexical(ctx, tx, stored...); err != nil {
		return err
	}
	s.clock.since(&s.clock.lexical, t0)
	s.stats.invalidate()
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// EmbedMissing embeds every entry that has no vectors from the current embedder. It returns
// how many entries it embedded.
func (s *Store) EmbedMissing(ctx context.Context) (int, error) {
	return s.embedMissing(ctx, s.space().embedder, nil)
}

// Count is the number of entries.
func (s *Store) Count(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM retrieval_entry").Scan(&n); err != nil {
		return 0, kefu.E("retrieval.Count", kefu.Unavailable, err)
	}
	return n, nil
}

type hit struct {
	entry Entry
	score float64
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Search returns the entries that best answer question, best first, one per key, each in
// lang where the entry has that language. How they are found is the store's SearchOptions.
func (s *Store) Search(ctx context.Context, question, lang string, k int) ([]hit, error) {
	return s.search(ctx, s.pool, question, lang, k)
}

// Answer answers question from the knowledge base in lang. An answer below the threshold has
// Found false and carries related questions instead of a guess.
func (s *Store) Answer(ctx context.Context, question, lang string) (Answer, error) {
	return s.answer(ctx, s.pool, question, lang)
}

// AnswerTx is Answer inside tx: for a caller that holds a transaction, which must not wait
// for a second connection from the pool.
func (s *Store) AnswerTx(ctx context.Context, tx pgx.Tx, question, lang string) (Answer, error) {
	return s.answer(ctx, tx, question, lang)
}

func (s *Store) answer(ctx context.Context, db querier, question, lang string) (Answer, error) {
	f, err := s.find(ctx, db, question, lang, 4)
	if err != nil {
		return Answer{}, err
	}
	return s.decide(f), nil
}

// decide picks the answer among what was found, or none.
func (s *Store) decide(f findings) Answer {
	hits := f.hits
	if len(hits) == 0 {
		return Answer{}
	}
	a := Answer{Score: hits[0].score, Confidence: hits[0].score}
	found := func(i int, confidence float64) {
		e := hits[i].entry
		a = Answer{Found: true, Score: hits[i].score, Confidence: confidence, Text: e.Answer,
			Source: Source{EntryID: e.ID, Key: e.Key, Title: e.Title, Language: e.Language, Version: e.Version, Link: e.Link}}
		hits = append(hits[:i:i], hits[i+1:]...)
	}
	if m := s.space().answerability; m != nil {
		// The fitted decision answers with the best-ranked entry, or not at all.
		p := m.Prob(f.features())
		a.Confidence = p
		if p >= m.Threshold {
			found(0, p)
		}
	} else {
		// The best-ranked hit whose own evidence (its best phrasing's cosine) reaches the
		// threshold answers: the ranking may put a lexical match first, but no answer is
		// given on weaker evidence than the threshold.
		for i, h := range hits {
			if h.score >= s.threshold {
				found(i, h.score)
				break
			}
		}
	}
	if a.Found {
		a.Evidence = append(a.Evidence, Evidence{Source: a.Source, Text: a.Text, Score: a.Score})
	}
	for _, h := range hits {
		a.Evidence = append(a.Evidence, evidenceOf(h))
	}
	for _, h := range hits[:min(3, len(hits))] {
		a.Related = append(a.Related, h.entry.Question)
	}
	return a
}

// Import stores entries as one transaction, so that an import that fails part-way stores
// nothing, then embeds them. progress is called with the number stored so far.
func (s *Store) Import(ctx context.Context, actor string, entries []Entry, progress func(done int)) error {
	const op = "retrieval.Import"
	for i, e := range entries {
		if e.Key == "" || e.Language == "" || e.Answer == "" || e.Question == "" {
			return kefu.Errorf(op, kefu.Invalid, "entry %d needs a key, a language, a question and an answer", i+1)
		}
	}
	const batch = 500
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		for i := 0; i < len(entries); i += batch {
			if err := s.upsertTx(ctx, tx, actor, entries[i:min(i+batch, len(entries))]); err != nil {
				return err
			}
			if progress != nil {
				progress(min(i+batch, len(entries)))
			}
		}
		return audit(ctx, tx, actor, "import", "", "", 0, map[string]any{"entries": len(entries)})
	})
	if err != nil {
		return err
	}
	_, err = s.EmbedMissing(ctx) // every entry stored lost its vectors: embedding them analyzes the tables
	return err
}

// EmbedderID names the vector space the store searches.
func (s *Store) EmbedderID() string { return s.space().embedder.EmbedderID() }
