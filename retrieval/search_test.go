package retrieval_test

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/kefu-dev/kefu/internal/pgtest"
	"github.com/kefu-dev/kefu/retrieval"
)

// TestLexicalAtScale: lexical search reads at most LexicalDepth postings of a term, yet the
// entry with the question's rare word still ranks first, a question of common words alone
// still finds entries, and cut or not the scores are BM25's: the ranking is the same as when
// every posting is read. Terms a search met before an entry had them are found as soon as
// the entry is written, and an archived entry's terms go with it.
func TestLexicalAtScale(t *testing.T) {
	t.Parallel()
	enc := encoder(t)
	pool := pgtest.Schema(t, retrieval.Migrations())
	kb := retrieval.NewStore(pool, enc, retrieval.DefaultThreshold, slog.New(slog.DiscardHandler))
	ctx := t.Context()
	lexical := func(depth int, q string) []string {
		t.Helper()
		o := retrieval.DefaultSearch
		o.Mode, o.LexicalDepth = retrieval.ModeLexical, depth
		kb.SetSearch(o)
		s, err := kb.BenchSearch(ctx, []retrieval.EvalQuery{{Query: q, Language: "en"}}, nil, 10)
		if err != nil {
			t.Fatal(err)
		}
		return s[0].Keys
	}

	// Searched before any entry has the word: the store counts it as in none.
	if keys := lexical(0, "quokka parcel"); len(keys) != 0 {
		t.Fatalf("empty store found %v", keys)
	}
	var entries []retrieval.Entry
	for i := range 40 {
		entries = append(entries, retrieval.Entry{Key: fmt.Sprintf("parcel-%02d", i), Language: "en",
			Question: fmt.Sprintf("Where is parcel %d?", i), Answer: "Your parcel ships within two days." + strings.Repeat(" parcel", i%4)})
	}
	entries = append(entries, retrieval.Entry{Key: "quokka", Language: "en", Question: "Do you ship the quokka plush?",
		Answer: "The quokka plush ships as a parcel like any other."})
	if err := kb.Import(ctx, "test", entries, nil); err != nil {
		t.Fatal(err)
	}
	if keys := lexical(0, "quokka parcel"); len(keys) == 0 || keys[0] != "quokka" {
		t.Fatalf("right after the import, lexical search for a word it had counted in no entry = %v, want quokka first", keys)
	}
	// "parcel" is in all 41 entries: with a depth of 5 it is cut, and only its 5 best
	// postings are read before the entries found are scored on it exactly.
	full, cut := lexical(1000, "quokka parcel"), lexical(5, "quokka parcel")
	if len(cut) == 0 || cut[0] != "quokka" || !slices.Equal(full[:min(3, len(full))], cut[:min(3, len(cut))]) {
		t.Fatalf("cut ranking %v, full ranking %v: want quokka first and the same head", cut, full)
	}
	if keys := lexical(5, "parcel ships"); len(keys) == 0 {
		t.Fatal("a question of cut words only found nothing")
	}

	if err := kb.Archive(ctx, "test", "quokka", "en"); err != nil {
		t.Fatal(err)
	}
	var orphans int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM retrieval_posting p WHERE NOT EXISTS (SELECT 1 FROM retrieval_entry e WHERE e.id = p.entry_id)`).Scan(&orphans); err != nil || orphans != 0 {
		t.Fatalf("%d postings of archived entries (%v)", orphans, err)
	}
	if keys := lexical(0, "quokka"); slices.Contains(keys, "quokka") {
		t.Fatalf("archived entry still found: %v", keys)
	}
}
