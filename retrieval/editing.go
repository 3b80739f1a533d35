package retrieval

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"

	"github.com/kefu-dev/kefu"
)

// Revision states.
const (
	StateDraft     = "draft"
	StatePublished = "published"
	StateDiscarded = "discarded"
)

// Revision kinds: an FAQ entry, or a document published as passages.
const (
	KindFAQ      = "faq"
	KindDocument = "document"
	kindPassage  = "passage" // a published document's chunk, as retrieval_entry stores it
)

// Revision is one version of an entry or document in one language.
type Revision struct {
	ID          int64      `json:"id"`
	Key         string     `json:"key"`
	Language    string     `json:"language"`
	Version     int        `json:"version"`
	State       string     `json:"state"`
	Kind        string     `json:"kind"`
	Format      string     `json:"format,omitempty"` // a document's: markdown, html, text
	Title       string     `json:"title"`
	Question    string     `json:"question"`
	Alternates  []string   `json:"alternates"`
	Answer      string     `json:"answer"` // a document's body
	Link        string     `json:"link"`
	Tags        []string   `json:"tags"`
	Note        string     `json:"note"`
	Author      string     `json:"author"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	PublishedAt *time.Time `json:"published_at,omitempty"`
	PublishedBy string     `json:"published_by,omitempty"`
	Live        bool       `json:"live"` // what customers are answered from now
}

// Draft is an editor's change to an entry. BaseVersion is the version the editor started
// from (0 for a new entry): saving over a newer version than that is a Conflict, so two
// editors never overwrite each other unknowingly.
type Draft struct {
	Key         string   `json:"key"`
	Language    string   `json:"language"`
	Kind        string   `json:"kind"`
	Format      string   `json:"format"`
	Title       string   `json:"title"`
	Question    string   `json:"question"`
	Alternates  []string `json:"alternates"`
	Answer      string   `json:"answer"`
	Link        string   `json:"link"`
	Tags        []string `json:"tags"`
	Note        string   `json:"note"`
	BaseVersion int      `json:"base_version"`
}

// Limits of what an editor may save.
const (
	maxFAQAnswer   = 20000
	maxDocument    = MaxDocumentBytes
	maxShortField  = 500
	maxAlternates  = 100
	maxTags        = 20
	maxKeyLength   = 128
	revisionFields = `id, key, language, version, state, kind, format, title, question, alternates, answer, link, tags,
	note, author, created_at, updated_at, published_at, published_by`
)

var (
	keyPattern  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]*$`)
	langPattern = regexp.MustCompile(`^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$`)
)

// ValidKey reports whether key can name an entry: letters, digits and . _ : - .
func ValidKey(key string) bool {
	return len(key) <= maxKeyLength && keyPattern.MatchString(key) && !strings.Contains(key, "#")
}

// check validates a draft as far as saving needs: the key, the language, sizes. Publishing
// needs more (ready).
func (d *Draft) check(op string) error {
	d.Key, d.Language = strings.TrimSpace(d.Key), strings.TrimSpace(d.Language)
	if !ValidKey(d.Key) {
		return kefu.Errorf(op, kefu.Invalid, "key %q: use letters, digits and . _ : - (at most %d)", d.Key, maxKeyLength)
	}
	if !langPattern.MatchString(d.Language) {
		return kefu.Errorf(op, kefu.Invalid, "language %q: use a language code such as zh, en or pt-BR", d.Language)
	}
	if d.Kind == "" {
		d.Kind = KindFAQ
	}
	limit := maxFAQAnswer
	switch d.Kind {
	case KindFAQ:
		d.Format = ""
	case KindDocument:
		limit = maxDocument
		if d.Format == "" {
			d.Format = "markdown"
		}
		if d.Format != "markdown" && d.Format != "html" && d.Format != "text" {
			return kefu.Errorf(op, kefu.Invalid, "format %q: use markdown, html or text", d.Format)
		}
	default:
		return kefu.Errorf(op, kefu.Invalid, "kind %q: use faq or document", d.Kind)
	}
	for name, v := range map[string]string{"title": d.Title, "question": d.Question, "link": d.Link, "note": d.Note} {
		if utf8.RuneCountInString(v) > maxShortField {
			return kefu.Errorf(op, kefu.Invalid, "%s is longer than %d characters", name, maxShortField)
		}
	}
	if len(d.Answer) > limit {
		return kefu.Errorf(op, kefu.Invalid, "the answer is longer than %d bytes", limit)
	}
	for _, s := range append(append([]string{d.Title, d.Question, d.Answer, d.Link, d.Note}, d.Alternates...), d.Tags...) {
		if !utf8.ValidString(s) {
			return kefu.Errorf(op, kefu.Invalid, "text is not valid UTF-8")
		}
	}
	d.Alternates = cleanList(d.Alternates)
	d.Tags = cleanList(d.Tags)
	if len(d.Alternates) > maxAlternates || len(d.Tags) > maxTags {
		return kefu.Errorf(op, kefu.Invalid, "at most %d alternative questions and %d tags", maxAlternates, maxTags)
	}
	for _, s := range append(slices.Clone(d.Alternates), d.Tags...) {
		if utf8.RuneCountInString(s) > maxShortField {
			return kefu.Errorf(op, kefu.Invalid, "an alternative question or tag is longer than %d characters", maxShortField)
		}
	}
	if d.Link != "" && !strings.HasPrefix(d.Link, "https://") && !strings.HasPrefix(d.Link, "http://") && !strings.HasPrefix(d.Link, "/") {
		return kefu.Errorf(op, kefu.Invalid, "link %q: use an http(s) address or a path", d.Link)
	}
	return nil
}

// cleanList trims items and drops empty ones and repeats.
func cleanList(in []string) []string {
	out := []string{}
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// ready reports what a revision lacks to be published.
func (r Revision) ready(op string) error {
	switch r.Kind {
	case KindDocument:
		if strings.TrimSpace(r.Title) == "" || strings.TrimSpace(r.Answer) == "" {
			return kefu.Errorf(op, kefu.Invalid, "a document needs a title and a body before it is published")
		}
		if _, err := SplitDocument(r.Format, []byte(r.Answer), ChunkOptions{}); err != nil {
			return err
		}
	default:
		if strings.TrimSpace(r.Question) == "" || strings.TrimSpace(r.Answer) == "" {
			return kefu.Errorf(op, kefu.Invalid, "an entry needs a question and an answer before it is published")
		}
	}
	return nil
}

// lockKey serialises changes to one entry in one language for the rest of tx.
func lockKey(ctx context.Context, tx pgx.Tx, key, lang string) error {
	_, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended('retrieval:' || $1 || '/' || $2, 0))", key, lang)
	return err
}

// latest is the newest non-discarded revision of key in lang, and whether there is one.
func latest(ctx context.Context, tx pgx.Tx, key, lang string) (Revision, bool, error) {
	rows, err := tx.Query(ctx, `SELECT `+revisionFields+` FROM retrieval_revision
WHERE key = $1 AND language = $2 AND state <> 'discarded' ORDER BY version DESC LIMIT 1`, key, lang)
	if err != nil {
		return Revision{}, false, err
	}
	r, err := pgx.CollectExactlyOneRow(rows, scanRevision)
	if errors.Is(err, pgx.ErrNoRows) {
		return Revision{}, false, nil
	}
	return r, err == nil, err
}

func scanRevision(row pgx.CollectableRow) (Revision, error) {
	var r Revision
	err := row.Scan(&r.ID, &r.Key, &r.Language, &r.Version, &r.State, &r.Kind, &r.Format, &r.Title, &r.Question,
		&r.Alternates, &r.Answer, &r.Link, &r.Tags, &r.Note, &r.Author, &r.CreatedAt, &r.UpdatedAt, &r.PublishedAt, &r.PublishedBy)
	return r, err
}

// nextVersion is one more than any version key has had in lang, discarded drafts included.
func nextVersion(ctx context.Context, tx pgx.Tx, key, lang string) (int, error) {
	var v int
	err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) + 1 FROM retrieval_revision WHERE key = $1 AND language = $2", key, lang).Scan(&v)
	return v, err
}

// audit records an editor's action in tx.
func audit(ctx context.Context, tx pgx.Tx, actor, action, key, lang string, version int, detail map[string]any) error {
	if detail == nil {
		detail = map[string]any{}
	}
	_, err := tx.Exec(ctx, "INSERT INTO retrieval_audit (actor, action, key, language, version, detail) VALUES ($1, $2, $3, $4, $5, $6)",
		actor, action, key, lang, version, detail)
	return err
}

// SaveDraft saves an editor's change as the entry's open draft: the draft is created (one
// version after the newest) or updated in place. Customers keep getting the published
// version until the draft is published.
func (s *Store) SaveDraft(ctx context.Context, actor string, d Draft) (Revision, error) {
	const op = "retrieval.SaveDraft"
	if err := d.check(op); err != nil {
		return Revision{}, err
	}
	var out Revision
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		if err := lockKey(ctx, tx, d.Key, d.Language); err != nil {
			return err
		}
		cur, exists, err := latest(ctx, tx, d.Key, d.Language)
		if err != nil {
			return err
		}
		switch {
		case !exists && d.BaseVersion != 0:
			return kefu.Errorf(op, kefu.NotFound, "no entry %q in %s", d.Key, d.Language)
		case exists && d.BaseVersion != cur.Version:
			if d.BaseVersion == 0 {
				return kefu.Errorf(op, kefu.Conflict, "an entry %q in %s exists already", d.Key, d.Language)
			}
			return kefu.Errorf(op, kefu.Conflict, "entry %q in %s has changed since version %d (now version %d by %s): reload it",
				d.Key, d.Language, d.BaseVersion, cur.Version, cur.Author)
		case exists && cur.Kind != d.Kind:
			return kefu.Errorf(op, kefu.Invalid, "entry %q is a %s, not a %s", d.Key, cur.Kind, d.Kind)
		}
		action := "update_draft"
		version := cur.Version
		if !exists || cur.State != StateDraft {
			action = "create_draft"
			if version, err = nextVersion(ctx, tx, d.Key, d.Language); err != nil {
				return err
			}
		}
		const q = `
INSERT INTO retrieval_revision (key, language, version, state, kind, format, title, question, alternates, answer, link, tags, note, author)
VALUES ($1, $2, $3, 'draft', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (key, language, version) DO UPDATE
SET format = EXCLUDED.format, title = EXCLUDED.title, question = EXCLUDED.question, alternates = EXCLUDED.alternates,
    answer = EXCLUDED.answer, link = EXCLUDED.link, tags = EXCLUDED.tags, note = EXCLUDED.note, author = EXCLUDED.author,
    updated_at = now()
RETURNING ` + revisionFields
		rows, err := tx.Query(ctx, q, d.Key, d.Language, version, d.Kind, d.Format, d.Title, d.Question, d.Alternates,
			d.Answer, d.Link, d.Tags, d.Note, actor)
		if err != nil {
			return err
		}
		if out, err = pgx.CollectExactlyOneRow(rows, scanRevision); err != nil {
			return err
		}
		return audit(ctx, tx, actor, action, d.Key, d.Language, version, map[string]any{"note": d.Note})
	})
	return out, err
}

// Publish makes the open draft of key in lang what customers are answered from. Its vectors
// and terms are written in the same transaction, so the new answer serves the moment the
// call returns and the old one until then.
func (s *Store) Publish(ctx context.Context, actor, key, lang string) (Revision, error) {
	const op = "retrieval.Publish"
	var out Revision
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		if err := lockKey(ctx, tx, key, lang); err != nil {
			return err
		}
		cur, exists, err := latest(ctx, tx, key, lang)
		if err != nil {
			return err
		}
		if !exists || cur.State != StateDraft {
			return kefu.Errorf(op, kefu.NotFound, "entry %q in %s has no draft to publish", key, lang)
		}
		if err := cur.ready(op); err != nil {
			return err
		}
		if err := s.apply(ctx, tx, cur); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `UPDATE retrieval_revision SET state = 'published', published_at = now(), published_by = $2
WHERE id = $1 RETURNING `+revisionFields, cur.ID, actor)
		if err != nil {
			return err
		}
		if out, err = pgx.CollectExactlyOneRow(rows, scanRevision); err != nil {
			return err
		}
		out.Live = true
		return audit(ctx, tx, actor, "publish", key, lang, cur.Version, nil)
	})
	return out, err
}

// Rollback publishes again what version was, as a new version (history is never rewritten).
// An open draft must be published or discarded first.
func (s *Store) Rollback(ctx context.Context, actor, key, lang string, version int) (Revision, error) {
	const op = "retrieval.Rollback"
	var out Revision
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		if err := lockKey(ctx, tx, key, lang); err != nil {
			return err
		}
		cur, exists, err := latest(ctx, tx, key, lang)
		if err != nil {
			return err
		}
		if !exists {
			return kefu.Errorf(op, kefu.NotFound, "no entry %q in %s", key, lang)
		}
		if cur.State == StateDraft {
			return kefu.Errorf(op, kefu.Conflict, "entry %q in %s has an open draft (version %d): publish or discard it first", key, lang, cur.Version)
		}
		rows, err := tx.Query(ctx, `SELECT `+revisionFields+` FROM retrieval_revision
WHERE key = $1 AND language = $2 AND version = $3 AND state = 'published'`, key, lang, version)
		if err != nil {
			return err
		}
		old, err := pgx.CollectExactlyOneRow(rows, scanRevision)
		if errors.Is(err, pgx.ErrNoRows) {
			return kefu.Errorf(op, kefu.NotFound, "entry %q in %s has no published version %d", key, lang, version)
		}
		if err != nil {
			return err
		}
		next, err := nextVersion(ctx, tx, key, lang)
		if err != nil {
			return err
		}
		const q = `
INSERT INTO retrieval_revision (key, language, version, state, kind, format, title, question, alternates, answer, link, tags,
                                note, author, published_at, published_by)
SELECT key, language, $2, 'published', kind, format, title, question, alternates, answer, link, tags,
       $3, $4, now(), $4
FROM retrieval_revision WHERE id = $1
RETURNING ` + revisionFields
		rows, err = tx.Query(ctx, q, old.ID, next, fmt.Sprintf("rollback to version %d", version), actor)
		if err != nil {
			return err
		}
		if out, err = pgx.CollectExactlyOneRow(rows, scanRevision); err != nil {
			return err
		}
		if err := s.apply(ctx, tx, out); err != nil {
			return err
		}
		out.Live = true
		return audit(ctx, tx, actor, "rollback", key, lang, next, map[string]any{"to_version": version})
	})
	return out, err
}

// Discard drops the open draft of key in lang.
func (s *Store) Discard(ctx context.Context, actor, key, lang string) error {
	const op = "retrieval.Discard"
	return s.inTx(ctx, op, func(tx pgx.Tx) error {
		var version int
		err := tx.QueryRow(ctx, `UPDATE retrieval_revision SET state = 'discarded', updated_at = now()
WHERE key = $1 AND language = $2 AND state = 'draft' RETURNING version`, key, lang).Scan(&version)
		if errors.Is(err, pgx.ErrNoRows) {
			return kefu.Errorf(op, kefu.NotFound, "entry %q in %s has no draft", key, lang)
		}
		if err != nil {
			return err
		}
		return audit(ctx, tx, actor, "discard_draft", key, lang, version, nil)
	})
}

// Archive stops key in lang from answering customers. Its history stays; rolling back to a
// version publishes it again.
func (s *Store) Archive(ctx context.Context, actor, key, lang string) error {
	const op = "retrieval.Archive"
	return s.inTx(ctx, op, func(tx pgx.Tx) error {
		if err := lockKey(ctx, tx, key, lang); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "DELETE FROM retrieval_entry WHERE (key = $1 OR parent = $1) AND language = $2", key, lang)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return kefu.Errorf(op, kefu.NotFound, "entry %q in %s is not published", key, lang)
		}
		s.stats.invalidate()
		return audit(ctx, tx, actor, "archive", key, lang, 0, nil)
	})
}

// apply makes rev what customers are answered from, inside tx: the entry (or the document's
// passages) with its vectors and terms.
func (s *Store) apply(ctx context.Context, tx pgx.Tx, rev Revision) error {
	var entries []Entry
	switch rev.Kind {
	case KindDocument:
		chunks, err := SplitDocument(rev.Format, []byte(rev.Answer), ChunkOptions{})
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM retrieval_entry WHERE parent = $1 AND language = $2", rev.Key, rev.Language); err != nil {
			return err
		}
		for _, c := range chunks {
			heading := c.Heading
			if len(heading) > 0 && heading[0] == rev.Title {
				heading = heading[1:]
			}
			title := strings.Join(append([]string{rev.Title}, heading...), " › ")
			question := rev.Title
			if len(heading) > 0 {
				question = heading[len(heading)-1]
			}
			entries = append(entries, Entry{Key: fmt.Sprintf("%s#%d", rev.Key, c.Index+1), Language: rev.Language, Kind: kindPassage,
				Parent: rev.Key, Title: title, Question: question, Answer: c.Text, Link: rev.Link, Tags: rev.Tags, Version: rev.Version})
		}
	default:
		entries = []Entry{{Key: rev.Key, Language: rev.Language, Kind: KindFAQ, Title: rev.Title, Question: rev.Question,
			Alternates: rev.Alternates, Answer: rev.Answer, Link: rev.Link, Tags: rev.Tags, Version: rev.Version}}
	}
	var ids []int64
	for _, e := range entries {
		const q = `
INSERT INTO retrieval_entry (key, language, kind, parent, title, question, alternates, answer, link, tags, version)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (key, language) DO UPDATE
SET kind = EXCLUDED.kind, parent = EXCLUDED.parent, title = EXCLUDED.title, question = EXCLUDED.question,
    alternates = EXCLUDED.alternates, answer = EXCLUDED.answer, link = EXCLUDED.link, tags = EXCLUDED.tags,
    version = EXCLUDED.version, updated_at = now()
RETURNING id`
		if err := tx.QueryRow(ctx, q, e.Key, e.Language, e.Kind, e.Parent, e.Title, e.Question, nonNil(e.Alternates),
			e.Answer, e.Link, nonNil(e.Tags), e.Version).Scan(&e.ID); err != nil {
			return err
		}
		if err := indexLexical(ctx, tx, e); err != nil {
			return err
		}
		ids = append(ids, e.ID)
	}
	s.stats.invalidate()
	return s.embedEntries(ctx, tx, ids)
}

// embedEntries replaces the vectors of the entries ids, in tx.
func (s *Store) embedEntries(ctx context.Context, tx pgx.Tx, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, "SELECT id, kind, title, question, alternates, answer FROM retrieval_entry WHERE id = ANY($1) ORDER BY id", ids)
	if err != nil {
		return err
	}
	list, err := scanTodos(rows)
	if err != nil {
		return err
	}
	var texts []string
	for _, t := range list {
		texts = append(texts, t.phrasings...)
	}
	b := &pgx.Batch{}
	b.Queue("DELETE FROM retrieval_vector WHERE entry_id = ANY($1)", ids)
	// The serving embedder's vectors, and while a re-embedding runs, its target's too.
	for _, e := range s.embedders() {
		vecs, err := e.Embed(ctx, texts) // embedders run their own batches
		if err != nil {
			return kefu.E("retrieval.embed", kefu.Internal, err)
		}
		at := 0
		for _, t := range list {
			for _, p := range t.phrasings {
				b.Queue("INSERT INTO retrieval_vector (entry_id, embedder, phrasing, embedding) VALUES ($1, $2, $3, $4)",
					t.id, e.EmbedderID(), p, pgvector.NewVector(vecs[at]))
				at++
			}
		}
	}
	return tx.SendBatch(ctx, b).Close()
}

// phrasings are the texts of an entry that get their own vector: an FAQ's question, title
// and alternative questions; a passage's heading and text.
func phrasings(kind, title, question string, alts []string, answer string) []string {
	if kind == kindPassage {
		return []string{title + "\n" + answer}
	}
	ph := []string{question}
	for _, p := range append([]string{title}, alts...) {
		if p != "" && !slices.Contains(ph, p) {
			ph = append(ph, p)
		}
	}
	return ph
}

// inTx runs fn in a transaction; an error that is not already a kefu error is Unavailable.
func (s *Store) inTx(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	err := pgx.BeginFunc(ctx, s.pool, fn)
	var ke *kefu.Error
	if err != nil && !errors.As(err, &ke) {
		return kefu.E(op, kefu.Unavailable, err)
	}
	return err
}

// History is every revision of key in lang, newest first, with the live one marked.
func (s *Store) History(ctx context.Context, key, lang string) ([]Revision, error) {
	const op = "retrieval.History"
	rows, err := s.pool.Query(ctx, `SELECT `+revisionFields+` FROM retrieval_revision
WHERE key = $1 AND language = $2 ORDER BY version DESC`, key, lang)
	if err != nil {
		return nil, kefu.E(op, kefu.Unavailable, err)
	}
	revs, err := pgx.CollectRows(rows, scanRevision)
	if err != nil {
		return nil, kefu.E(op, kefu.Unavailable, err)
	}
	if len(revs) == 0 {
		return nil, kefu.Errorf(op, kefu.NotFound, "no entry %q in %s", key, lang)
	}
	live, err := s.liveVersion(ctx, key, lang)
	if err != nil {
		return nil, err
	}
	for i := range revs {
		revs[i].Live = revs[i].Version == live && revs[i].State == StatePublished
	}
	return revs, nil
}

// liveVersion is the published version customers get, or 0.
func (s *Store) liveVersion(ctx context.Context, key, lang string) (int, error) {
	var v int
	err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM retrieval_entry
WHERE (key = $1 OR parent = $1) AND language = $2`, key, lang).Scan(&v)
	if err != nil {
		return 0, kefu.E("retrieval.liveVersion", kefu.Unavailable, err)
	}
	return v, nil
}

// Revision returns one version of key in lang.
func (s *Store) Revision(ctx context.Context, key, lang string, version int) (Revision, error) {
	const op = "retrieval.Revision"
	revs, err := s.History(ctx, key, lang)
	if err != nil {
		return Revision{}, err
	}
	for _, r := range revs {
		if r.Version == version {
			return r, nil
		}
	}
	return Revision{}, kefu.Errorf(op, kefu.NotFound, "entry %q in %s has no version %d", key, lang, version)
}

// AuditRecord is one editor action.
type AuditRecord struct {
	At       time.Time      `json:"at"`
	Actor    string         `json:"actor"`
	Action   string         `json:"action"`
	Key      string         `json:"key"`
	Language string         `json:"language"`
	Version  *int           `json:"version,omitempty"`
	Detail   map[string]any `json:"detail"`
}

// Audit is the newest editor actions, of key when it is not empty.
func (s *Store) Audit(ctx context.Context, key string, limit int) ([]AuditRecord, error) {
	const op = "retrieval.Audit"
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT at, actor, action, key, language, version, detail FROM retrieval_audit
WHERE $1 = '' OR key = $1 ORDER BY id DESC LIMIT $2`, key, limit)
	if err != nil {
		return nil, kefu.E(op, kefu.Unavailable, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditRecord, error) {
		var a AuditRecord
		err := r.Scan(&a.At, &a.Actor, &a.Action, &a.Key, &a.Language, &a.Version, &a.Detail)
		return a, err
	})
	if err != nil {
		return nil, kefu.E(op, kefu.Unavailable, err)
	}
	return out, nil
}
