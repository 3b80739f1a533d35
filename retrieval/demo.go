package retrieval

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"
)

//go:embed demo/knowledge.yaml
var demoYAML []byte

// demoDocs are the demo shop's help documents, named NAME.LANG.EXT (md, html or txt).
//
//go:embed demo/docs
var demoDocs embed.FS

type fileEntry struct {
	Title      string        `yaml:"title"`
	Question   string        `yaml:"question"`
	Alternates []string      `yaml:"alternates"`
	Answer     string        `yaml:"answer"`
	Link       string        `yaml:"link"`
	Tags       []string      `yaml:"tags"`
	History    []fileVersion `yaml:"history"`
}

// fileVersion is an earlier published answer of an entry, oldest first in `history`.
type fileVersion struct {
	Answer string `yaml:"answer"`
	Note   string `yaml:"note"`
}

// versioned is an entry with the answers it had before its current one.
type versioned struct {
	Entry
	history []fileVersion
}

// ParseYAML reads a knowledge file: `entries`, each a `key` and one block per language code
// with title, question, alternates, answer, link, tags and the earlier answers (`history`).
// Errors name the line.
func ParseYAML(data []byte) ([]Entry, error) {
	vs, err := parseVersioned(data)
	out := make([]Entry, len(vs))
	for i, v := range vs {
		out[i] = v.Entry
	}
	return out, err
}

func parseVersioned(data []byte) ([]versioned, error) {
	var doc struct {
		Entries []map[string]any `yaml:"entries"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("retrieval: knowledge file: %s", yaml.FormatError(err, false, true))
	}
	var out []versioned
	for i, raw := range doc.Entries {
		key, _ := raw["key"].(string)
		if key == "" {
			return nil, fmt.Errorf("retrieval: knowledge file: entry %d has no key", i+1)
		}
		langs := make([]string, 0, len(raw))
		for k := range raw {
			if k != "key" {
				langs = append(langs, k)
			}
		}
		sort.Strings(langs)
		for _, lang := range langs {
			b, err := yaml.Marshal(raw[lang])
			if err != nil {
				return nil, err
			}
			var fe fileEntry
			if err := yaml.UnmarshalWithOptions(b, &fe, yaml.Strict()); err != nil {
				return nil, fmt.Errorf("retrieval: knowledge file: entry %q, language %q: %s", key, lang, yaml.FormatError(err, false, false))
			}
			if fe.Question == "" || fe.Answer == "" {
				return nil, fmt.Errorf("retrieval: knowledge file: entry %q, language %q needs a question and an answer", key, lang)
			}
			for j, h := range fe.History {
				if h.Answer == "" {
					return nil, fmt.Errorf("retrieval: knowledge file: entry %q, language %q: history %d has no answer", key, lang, j+1)
				}
			}
			out = append(out, versioned{Entry{Key: key, Language: lang, Title: fe.Title, Question: fe.Question,
				Alternates: fe.Alternates, Answer: fe.Answer, Link: fe.Link, Tags: fe.Tags}, fe.History})
		}
	}
	return out, nil
}

// DemoEntries is the demo knowledge base of an online shop, in Chinese and English.
func DemoEntries() ([]Entry, error) { return ParseYAML(demoYAML) }

// ErrNoEntries is returned by SeedDemo when the embedded demo file has no entries.
var ErrNoEntries = errors.New("retrieval: no entries")

// SeedDemo loads the demo knowledge base when the store is empty and reports whether it did:
// every entry at its first version, the later versions of those with a history published
// over it as an editor would, and the help documents.
func (s *Store) SeedDemo(ctx context.Context) (bool, error) { return s.seedDemo(ctx, true) }

// SeedDemoFAQ is SeedDemo without the documents: the demo's evaluation sets judge FAQ entries.
func (s *Store) SeedDemoFAQ(ctx context.Context) (bool, error) { return s.seedDemo(ctx, false) }

func (s *Store) seedDemo(ctx context.Context, docs bool) (bool, error) {
	n, err := s.Count(ctx)
	if err != nil || n > 0 {
		return false, err
	}
	vs, err := parseVersioned(demoYAML)
	if err != nil {
		return false, err
	}
	if len(vs) == 0 {
		return false, ErrNoEntries
	}
	first := make([]Entry, len(vs))
	for i, v := range vs {
		first[i] = v.Entry
		if len(v.history) > 0 {
			first[i].Answer = v.history[0].Answer
		}
	}
	if err := s.upsert(ctx, "demo", first); err != nil {
		return false, fmt.Errorf("retrieval: seed demo: %w", err)
	}
	for _, v := range vs {
		if len(v.history) == 0 {
			continue
		}
		later := append(v.history[1:len(v.history):len(v.history)], fileVersion{Answer: v.Answer, Note: "current"})
		for i, step := range later {
			e := v.Entry
			d := Draft{Key: e.Key, Language: e.Language, Title: e.Title, Question: e.Question, Alternates: e.Alternates,
				Answer: step.Answer, Link: e.Link, Tags: e.Tags, Note: step.Note, BaseVersion: i + 1}
			if _, err := s.SaveDraft(ctx, "demo", d); err != nil {
				return false, fmt.Errorf("retrieval: seed demo %s/%s: %w", e.Key, e.Language, err)
			}
			if _, err := s.Publish(ctx, "demo", e.Key, e.Language); err != nil {
				return false, fmt.Errorf("retrieval: seed demo %s/%s: %w", e.Key, e.Language, err)
			}
		}
	}
	defer s.analyze(ctx)
	if !docs {
		return true, nil
	}
	drafts, err := DemoDocuments()
	if err != nil {
		return false, err
	}
	for _, d := range drafts {
		if _, err := s.SaveDraft(ctx, "demo", d); err != nil {
			return false, fmt.Errorf("retrieval: seed demo document %s: %w", d.Key, err)
		}
		if _, err := s.Publish(ctx, "demo", d.Key, d.Language); err != nil {
			return false, fmt.Errorf("retrieval: seed demo document %s: %w", d.Key, err)
		}
	}
	return true, nil
}

// DemoDocuments are the demo shop's help documents as drafts: key "doc-NAME", the title from
// the document's first heading.
func DemoDocuments() ([]Draft, error) {
	files, err := fs.Glob(demoDocs, "demo/docs/*.*.*")
	if err != nil {
		return nil, err
	}
	var out []Draft
	for _, f := range files {
		parts := strings.Split(path.Base(f), ".")
		if len(parts) != 3 {
			continue
		}
		body, err := demoDocs.ReadFile(f)
		if err != nil {
			return nil, err
		}
		format := map[string]string{"md": "markdown", "html": "html", "txt": "text"}[parts[2]]
		if format == "" {
			return nil, fmt.Errorf("retrieval: demo document %s: use .md, .html or .txt", f)
		}
		chunks, err := SplitDocument(format, body, ChunkOptions{})
		if err != nil {
			return nil, fmt.Errorf("retrieval: demo document %s: %w", f, err)
		}
		title := parts[0]
		for _, c := range chunks {
			if len(c.Heading) > 0 {
				title = c.Heading[0]
				break
			}
		}
		out = append(out, Draft{Key: "doc-" + parts[0], Language: parts[1], Kind: KindDocument, Format: format,
			Title: title, Answer: string(body), Tags: []string{"document"}})
	}
	return out, nil
}
