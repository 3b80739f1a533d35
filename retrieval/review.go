package retrieval

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sergi/go-diff/diffmatchpatch"

	"github.com/kefu-dev/kefu"
)

// DiffOp is one stretch of a field's text: kept ("="), added ("+") or removed ("-").
type DiffOp struct {
	Op   string `json:"op"`
	Text string `json:"text"`
}

// FieldDiff is how one field differs between two versions.
type FieldDiff struct {
	Field string   `json:"field"`
	From  string   `json:"from"`
	To    string   `json:"to"`
	Ops   []DiffOp `json:"ops"`
}

// Diff compares two versions of key in lang field by field; fields that did not change are
// left out. Text is compared by characters and cleaned up to whole words and phrases, which
// reads well in Chinese as in English.
func (s *Store) Diff(ctx context.Context, key, lang string, from, to int) ([]FieldDiff, error) {
	revs, err := s.History(ctx, key, lang)
	if err != nil {
		return nil, err
	}
	var a, b *Revision
	for i := range revs {
		switch revs[i].Version {
		case from:
			a = &revs[i]
		case to:
			b = &revs[i]
		}
	}
	if a == nil || b == nil {
		return nil, kefu.Errorf("retrieval.Diff", kefu.NotFound, "entry %q in %s has no version %d or %d", key, lang, from, to)
	}
	return diffRevisions(*a, *b), nil
}

func diffRevisions(a, b Revision) []FieldDiff {
	fields := []struct{ name, from, to string }{
		{"title", a.Title, b.Title},
		{"question", a.Question, b.Question},
		{"alternates", strings.Join(a.Alternates, "\n"), strings.Join(b.Alternates, "\n")},
		{"answer", a.Answer, b.Answer},
		{"link", a.Link, b.Link},
		{"tags", strings.Join(a.Tags, ", "), strings.Join(b.Tags, ", ")},
	}
	dmp := diffmatchpatch.New()
	var out []FieldDiff
	for _, f := range fields {
		if f.from == f.to {
			continue
		}
		diffs := dmp.DiffCleanupSemantic(dmp.DiffMain(f.from, f.to, false))
		fd := FieldDiff{Field: f.name, From: f.from, To: f.to}
		for _, d := range diffs {
			op := "="
			switch d.Type {
			case diffmatchpatch.DiffInsert:
				op = "+"
			case diffmatchpatch.DiffDelete:
				op = "-"
			}
			fd.Ops = append(fd.Ops, DiffOp{op, d.Text})
		}
		out = append(out, fd)
	}
	return out
}

// ListOptions filter the editor's list of entries.
type ListOptions struct {
	Query    string // in the title, question, alternates or answer
	Language string
	Tag      string
	Kind     string // faq or document
	State    string // "draft": has an open draft; "live": published; "archived": not live
	Limit    int
	Offset   int
}

// Summary is one entry in one language as the editor's list shows it.
type Summary struct {
	Key          string     `json:"key"`
	Language     string     `json:"language"`
	Kind         string     `json:"kind"`
	Title        string     `json:"title"`
	Question     string     `json:"question"`
	Tags         []string   `json:"tags"`
	Version      int        `json:"version"`       // the newest
	LiveVersion  int        `json:"live_version"`  // 0: not answering customers
	DraftVersion int        `json:"draft_version"` // 0: no open draft
	UpdatedAt    time.Time  `json:"updated_at"`
	Author       string     `json:"author"`
	Hits         int64      `json:"hits"`
	LastHit      *time.Time `json:"last_hit,omitempty"`
	Up           int64      `json:"up"`
	Down         int64      `json:"down"`
	Translations []string   `json:"translations"` // the other languages of the key
}

// List is the entries an editor sees, newest change first, and how many match in all.
func (s *Store) List(ctx context.Context, o ListOptions) ([]Summary, int, error) {
	const op = "retrieval.List"
	if o.Limit <= 0 || o.Limit > 500 {
		o.Limit = 50
	}
	like := ""
	if q := strings.TrimSpace(o.Query); q != "" {
		like = "%" + strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(q) + "%"
	}
	const q = `
WITH cur AS (
    SELECT DISTINCT ON (key, language) * FROM retrieval_revision
    WHERE state <> 'discarded' ORDER BY key, language, version DESC
), live AS (
    SELECT coalesce(nullif(parent, ''), key) AS key, language, max(version) AS version
    FROM retrieval_entry GROUP BY 1, 2
), matched AS (
    SELECT c.*, coalesce(l.version, 0) AS live_version,
           CASE WHEN c.state = 'draft' THEN c.version ELSE 0 END AS draft_version
    FROM cur c LEFT JOIN live l ON l.key = c.key AND l.language = c.language
    WHERE ($1 = '' OR c.language = $1)
      AND ($2 = '' OR $2 = ANY (c.tags))
      AND ($3 = '' OR c.kind = $3)
      AND ($4 = '' OR c.title ILIKE $4 OR c.question ILIKE $4 OR c.answer ILIKE $4 OR c.key ILIKE $4
           OR array_to_string(c.alternates, ' ') ILIKE $4)
      AND ($5 = '' OR ($5 = 'draft' AND c.state = 'draft') OR ($5 = 'live' AND l.version IS NOT NULL)
           OR ($5 = 'archived' AND l.version IS NULL AND c.state <> 'draft'))
)
SELECT m.key, m.language, m.kind, m.title, m.question, m.tags, m.version, m.live_version, m.draft_version,
       m.updated_at, m.author,
       (SELECT count(*) FROM retrieval_usage u WHERE u.key = m.key AND u.language = m.language),
       (SELECT max(at) FROM retrieval_usage u WHERE u.key = m.key AND u.language = m.language),
       (SELECT count(*) FILTER (WHERE vote > 0) FROM retrieval_feedback f WHERE f.key = m.key AND f.language = m.language),
       (SELECT count(*) FILTER (WHERE vote < 0) FROM retrieval_feedback f WHERE f.key = m.key AND f.language = m.language),
       (SELECT coalesce(array_agg(DISTINCT o.language ORDER BY o.language), '{}') FROM retrieval_revision o
        WHERE o.key = m.key AND o.language <> m.language AND o.state <> 'discarded'),
       count(*) OVER ()
FROM matched m
ORDER BY m.updated_at DESC, m.key, m.language
LIMIT $6 OFFSET $7`
	rows, err := s.pool.Query(ctx, q, o.Language, o.Tag, o.Kind, like, o.State, o.Limit, max(o.Offset, 0))
	if err != nil {
		return nil, 0, kefu.E(op, kefu.Unavailable, err)
	}
	total := 0
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Summary, error) {
		var m Summary
		err := r.Scan(&m.Key, &m.Language, &m.Kind, &m.Title, &m.Question, &m.Tags, &m.Version, &m.LiveVersion,
			&m.DraftVersion, &m.UpdatedAt, &m.Author, &m.Hits, &m.LastHit, &m.Up, &m.Down, &m.Translations, &total)
		return m, err
	})
	if err != nil {
		return nil, 0, kefu.E(op, kefu.Unavailable, err)
	}
	return out, total, nil
}

// Passage is a retrieved entry with how it was found, for the editor's "try a question".
type Passage struct {
	Rank     int     `json:"rank"`
	Key      string  `json:"key"`
	Language string  `json:"language"`
	Title    string  `json:"title"`
	Question string  `json:"question"`
	Text     string  `json:"text"`
	Version  int     `json:"version"`
	Cosine   float64 `json:"cosine"` // the best phrasing's dense similarity: the answer's evidence
	Answers  bool    `json:"answers"`
}

// Trial is what the bot would answer to a question, and the passages it saw.
type Trial struct {
	Answer   Answer    `json:"answer"`
	Passages []Passage `json:"passages"`
	Draft    int       `json:"draft,omitempty"` // the draft version tried in place of the live one
}

// Try answers question in lang as the bot would, with the retrieved passages. With draftKey
// set, the open draft of that key in lang stands in for its live version: the draft is
// applied in a transaction that is rolled back, so customers never see it.
func (s *Store) Try(ctx context.Context, question, lang, draftKey string) (Trial, error) {
	const op = "retrieval.Try"
	question = strings.TrimSpace(question)
	if question == "" || len(question) > maxImportField {
		return Trial{}, kefu.Errorf(op, kefu.Invalid, "ask a question of 1 to %d bytes", maxImportField)
	}
	var t Trial
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return t, kefu.E(op, kefu.Unavailable, err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // always rolled back: a trial changes nothing
	if draftKey != "" {
		cur, exists, err := latest(ctx, tx, draftKey, lang)
		if err != nil {
			return t, kefu.E(op, kefu.Unavailable, err)
		}
		if !exists || cur.State != StateDraft {
			return t, kefu.Errorf(op, kefu.NotFound, "entry %q in %s has no draft", draftKey, lang)
		}
		if err := cur.ready(op); err != nil {
			return t, err
		}
		if err := s.apply(ctx, tx, cur); err != nil {
			return t, kefu.E(op, kefu.Unavailable, err)
		}
		t.Draft = cur.Version
	}
	f, err := s.find(ctx, tx, question, lang, 8)
	if err != nil {
		return t, err
	}
	hits := f.hits
	t.Answer = s.decide(f)
	for i, h := range hits {
		t.Passages = append(t.Passages, Passage{Rank: i + 1, Key: h.entry.Key, Language: h.entry.Language, Title: h.entry.Title,
			Question: h.entry.Question, Text: h.entry.Answer, Version: h.entry.Version, Cosine: h.score,
			Answers: t.Answer.Found && t.Answer.Source.EntryID == h.entry.ID})
	}
	s.stats.invalidate() // the trial's rolled-back entries may have been counted
	return t, nil
}

// Usage is one question that went to the knowledge base in a conversation.
type Usage struct {
	SessionID int64
	Question  string
	Language  string
	Key       string // the entry that answered; empty when none did
	Score     float64
}

// Record stores usage rows (hits, and gaps where Key is empty).
func (s *Store) Record(ctx context.Context, us []Usage) error {
	if len(us) == 0 {
		return nil
	}
	rows := make([][]any, len(us))
	for i, u := range us {
		q := u.Question
		if len(q) > 2000 {
			q = q[:2000]
		}
		rows[i] = []any{u.SessionID, strings.ToValidUTF8(q, ""), u.Language, u.Key, float32(u.Score)}
	}
	_, err := s.pool.CopyFrom(ctx, pgx.Identifier{"retrieval_usage"}, []string{"session_id", "question", "language", "key", "score"},
		pgx.CopyFromRows(rows))
	if err != nil {
		return kefu.E("retrieval.Record", kefu.Unavailable, err)
	}
	return nil
}

// Feedback is a customer's vote on a bot answer.
type Feedback struct {
	SessionID int64  `json:"session_id"`
	Seq       int64  `json:"seq"`
	Source    Source `json:"source"`
	Vote      int    `json:"vote"` // 1 or -1
	Comment   string `json:"comment"`
}

// Vote records feedback; a second vote on the same answer replaces the first.
func (s *Store) Vote(ctx context.Context, f Feedback) error {
	const op = "retrieval.Vote"
	if f.Vote != 1 && f.Vote != -1 {
		return kefu.Errorf(op, kefu.Invalid, "vote must be 1 (helpful) or -1 (not helpful)")
	}
	if utf8Len := len([]rune(f.Comment)); utf8Len > 1000 {
		return kefu.Errorf(op, kefu.Invalid, "the comment is longer than 1000 characters")
	}
	const q = `
INSERT INTO retrieval_feedback (session_id, seq, key, language, version, vote, comment) VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (session_id, seq) DO UPDATE SET vote = EXCLUDED.vote, comment = EXCLUDED.comment, at = now()`
	if _, err := s.pool.Exec(ctx, q, f.SessionID, f.Seq, f.Source.Key, f.Source.Language, f.Source.Version, f.Vote, f.Comment); err != nil {
		return kefu.E(op, kefu.Unavailable, err)
	}
	return nil
}

// Gap is a group of similar questions the knowledge base could not answer.
type Gap struct {
	Question  string    `json:"question"` // the group's most asked wording
	Examples  []string  `json:"examples"` // other wordings
	Count     int       `json:"count"`
	Languages []string  `json:"languages"`
	LastAsked time.Time `json:"last_asked"`
	IDs       []int64   `json:"ids"` // the usage rows, to close the gap with
}

// gapSimilarity groups two unanswered questions whose vectors are at least this close.
const gapSimilarity = 0.8

// Gaps groups the unanswered questions of the last days by similarity, biggest group first.
func (s *Store) Gaps(ctx context.Context, days, limit int) ([]Gap, error) {
	const op = "retrieval.Gaps"
	if days <= 0 {
		days = 30
	}
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	rows, err := s.pool.Query(ctx, `SELECT id, question, language, at FROM retrieval_usage
WHERE key = '' AND NOT gap_closed AND at > now() - make_interval(days => $1)
ORDER BY at DESC LIMIT 2000`, days)
	if err != nil {
		return nil, kefu.E(op, kefu.Unavailable, err)
	}
	type asked struct {
		id       int64
		question string
		language string
		at       time.Time
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (asked, error) {
		var a asked
		return a, r.Scan(&a.id, &a.question, &a.language, &a.at)
	})
	if err != nil {
		return nil, kefu.E(op, kefu.Unavailable, err)
	}
	// The same wording asked again is one point; distinct wordings are embedded and grouped
	// greedily around the most asked ones.
	type wording struct {
		text  string
		count int
		ids   []int64
		langs []string
		last  time.Time
	}
	byText := map[string]*wording{}
	var ws []*wording
	for _, a := range list {
		norm := strings.ToLower(strings.TrimSpace(a.question))
		w := byText[norm]
		if w == nil {
			w = &wording{text: a.question, last: a.at}
			byText[norm] = w
			ws = append(ws, w)
		}
		w.count++
		w.ids = append(w.ids, a.id)
		if !slices.Contains(w.langs, a.language) {
			w.langs = append(w.langs, a.language)
		}
		if a.at.After(w.last) {
			w.last = a.at
		}
	}
	slices.SortStableFunc(ws, func(a, b *wording) int { return b.count - a.count })
	texts := make([]string, len(ws))
	for i, w := range ws {
		texts[i] = w.text
	}
	if len(texts) == 0 {
		return nil, nil
	}
	vecs, err := s.space().embedder.Embed(ctx, texts) // embedders run their own batches
	if err != nil {
		return nil, kefu.E(op, kefu.Internal, err)
	}
	var gaps []Gap
	var heads []int // index in ws of each gap's first wording
	for i, w := range ws {
		joined := -1
		for g, h := range heads {
			if dot(vecs[i], vecs[h]) >= gapSimilarity {
				joined = g
				break
			}
		}
		if joined < 0 {
			heads = append(heads, i)
			gaps = append(gaps, Gap{Question: w.text, Count: w.count, Languages: slices.Clone(w.langs), LastAsked: w.last, IDs: slices.Clone(w.ids)})
			continue
		}
		g := &gaps[joined]
		g.Examples = append(g.Examples, w.text)
		g.Count += w.count
		g.IDs = append(g.IDs, w.ids...)
		for _, l := range w.langs {
			if !slices.Contains(g.Languages, l) {
				g.Languages = append(g.Languages, l)
			}
		}
		if w.last.After(g.LastAsked) {
			g.LastAsked = w.last
		}
	}
	slices.SortStableFunc(gaps, func(a, b Gap) int { return b.Count - a.Count })
	if len(gaps) > limit {
		gaps = gaps[:limit]
	}
	return gaps, nil
}

func dot(a, b []float32) float64 {
	var s float64
	for i := range min(len(a), len(b)) {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// CloseGap marks the usage rows ids as handled: turned into a draft, or dismissed.
func (s *Store) CloseGap(ctx context.Context, actor string, ids []int64, action string) error {
	const op = "retrieval.CloseGap"
	if len(ids) == 0 || len(ids) > 5000 {
		return kefu.Errorf(op, kefu.Invalid, "give 1 to 5000 question ids")
	}
	if action != "draft" && action != "dismiss" {
		return kefu.Errorf(op, kefu.Invalid, "action must be draft or dismiss")
	}
	return s.inTx(ctx, op, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "UPDATE retrieval_usage SET gap_closed = true WHERE id = ANY($1) AND key = '' AND NOT gap_closed", ids)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return kefu.Errorf(op, kefu.NotFound, "none of these questions is an open gap")
		}
		return audit(ctx, tx, actor, "gap_"+action, "", "", 0, map[string]any{"questions": tag.RowsAffected()})
	})
}

// Related suggests questions to ask after key's answer, in lang: first the entries other
// customers got answers from in the same conversations (most often together first), then
// the entries nearest in meaning.
func (s *Store) Related(ctx context.Context, key, lang string, n int) ([]string, error) {
	const op = "retrieval.Related"
	const q = `
WITH together AS (
    SELECT b.key, count(DISTINCT a.session_id) AS sessions
    FROM retrieval_usage a JOIN retrieval_usage b ON b.session_id = a.session_id AND b.key <> a.key AND b.key <> ''
    WHERE a.key = $1
    GROUP BY b.key
    HAVING count(DISTINCT a.session_id) >= 2
), near AS (
    SELECT e2.key, max(1 - (v2.embedding <=> q.embedding)) AS sim
    FROM (SELECT v1.embedding, v1.embedder FROM retrieval_entry e1 JOIN retrieval_vector v1 ON v1.entry_id = e1.id
          WHERE e1.key = $1 AND e1.language = $2 AND v1.phrasing = e1.question LIMIT 1) q
    CROSS JOIN LATERAL (SELECT entry_id, embedding FROM retrieval_vector v WHERE v.embedder = q.embedder
                        ORDER BY v.embedding <=> q.embedding LIMIT 24) v2
    JOIN retrieval_entry e2 ON e2.id = v2.entry_id AND e2.key <> $1 AND e2.kind = 'faq'
    GROUP BY e2.key
)
SELECT e.question FROM (
    SELECT key, 1 AS pass, sessions::float8 AS score FROM together
    UNION ALL
    SELECT key, 2, sim FROM near
) r JOIN retrieval_entry e ON e.key = r.key AND e.language = $2
GROUP BY e.question, r.key
ORDER BY min(r.pass), max(r.score) DESC
LIMIT $3`
	rows, err := s.pool.Query(ctx, q, key, lang, n)
	if err != nil {
		return nil, kefu.E(op, kefu.Unavailable, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, kefu.E(op, kefu.Unavailable, err)
	}
	return out, nil
}
