package retrieval_test

import (
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kefu-dev/kefu"
	"github.com/kefu-dev/kefu/internal/pgtest"
	"github.com/kefu-dev/kefu/nlu"
	"github.com/kefu-dev/kefu/retrieval"
)

func encoder(t testing.TB) *nlu.Classifier {
	t.Helper()
	if err := nlu.InitRuntime(nlu.FindRuntime()); err != nil {
		t.Fatalf("%v (run the tests with scripts/test)", err)
	}
	c, err := nlu.Load("../models/intent")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestStore(t *testing.T) {
	t.Parallel()
	enc := encoder(t)

	type testBundle struct {
		store *retrieval.Store
		pool  *pgxpool.Pool
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		pool := pgtest.Schema(t, retrieval.Migrations())
		return &testBundle{store: retrieval.NewStore(pool, enc, retrieval.DefaultThreshold, slog.New(slog.NewTextHandler(t.Output(), nil))), pool: pool}
	}
	// seeded is setup with the demo knowledge base in it.
	seeded := func(t *testing.T) *testBundle {
		t.Helper()
		b := setup(t)
		if _, err := b.store.SeedDemo(t.Context()); err != nil {
			t.Fatal(err)
		}
		return b
	}

	t.Run("DemoAnswersWithSource", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		seeded, err := b.store.SeedDemo(t.Context())
		if err != nil || !seeded {
			t.Fatalf("SeedDemo = %v, %v", seeded, err)
		}
		tests := []struct{ q, lang, key string }{
			{"多久能发货", "zh", "shipping-time"},
			{"退款多久到账", "zh", "refund-time"},
			{"忘记密码了怎么办", "zh", "account-password"},
			{"how long does shipping take", "en", "shipping-time"},
			{"which payment methods do you accept", "en", "payment-methods"},
			{"how do i get an invoice", "en", "invoice"},
		}
		for _, tt := range tests {
			a, err := b.store.Answer(t.Context(), tt.q, tt.lang)
			if err != nil {
				t.Fatal(err)
			}
			if !a.Found || a.Source.Key != tt.key || a.Source.Language != tt.lang || a.Text == "" || a.Source.Version < 1 {
				t.Errorf("Answer(%q) = found %v, %s/%s (score %.3f), want %s/%s", tt.q, a.Found, a.Source.Key, a.Source.Language, a.Score, tt.key, tt.lang)
			}
		}
	})

	// A document's passages exist in one language, with no translation to fall back on: a
	// question in another language never gets them, not even among the evidence, while
	// FAQ topics do fall back to another language.
	t.Run("PassagesOnlyInTheCustomersLanguage", func(t *testing.T) {
		t.Parallel()
		b := seeded(t)
		tests := []struct {
			q, lang, want string // want: a passage of this document among the evidence
		}{
			{"how long is the warranty and how do repairs work", "en", "doc-warranty"},
			{"how long is the warranty and how do repairs work", "zh", ""}, // a session in Chinese
			{"配送范围和运费，偏远地区多久送达", "zh", "doc-shipping-guide"},
			{"配送范围和运费，偏远地区多久送达", "en", ""},
		}
		for _, tt := range tests {
			a, err := b.store.Answer(t.Context(), tt.q, tt.lang)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, e := range a.Evidence {
				doc, _, passage := strings.Cut(e.Key, "#")
				if passage && e.Language != tt.lang {
					t.Errorf("Answer(%q, %s) has the %s passage %s among its evidence", tt.q, tt.lang, e.Language, e.Key)
				}
				found = found || (passage && doc == tt.want)
			}
			if tt.want != "" && !found {
				t.Errorf("Answer(%q, %s) has no passage of %s among its %d pieces of evidence", tt.q, tt.lang, tt.want, len(a.Evidence))
			}
		}
	})

	// The seeded tables have planner statistics at once: the searches' prepared statements are
	// not planned for empty tables (an HNSW scan of every vector) while autovacuum gets to them.
	t.Run("SeedAnalyzes", func(t *testing.T) {
		t.Parallel()
		b := seeded(t)
		var tables []string
		err := b.pool.QueryRow(t.Context(), `SELECT coalesce(array_agg(relname::text ORDER BY relname::text), '{}') FROM pg_stat_user_tables
WHERE schemaname = current_schema() AND relname IN ('retrieval_entry', 'retrieval_vector', 'retrieval_posting')
  AND last_analyze IS NOT NULL`).Scan(&tables)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"retrieval_entry", "retrieval_posting", "retrieval_vector"}; !slices.Equal(tables, want) {
			t.Errorf("tables analyzed when seeded: %v, want %v", tables, want)
		}
	})

	// A search inside a caller's transaction forces the generic plan for its lexical statement
	// only: the rest of the transaction plans as before.
	t.Run("GenericPlanStaysInTheSearch", func(t *testing.T) {
		t.Parallel()
		b := seeded(t)
		tx, err := b.pool.Begin(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(t.Context()) //nolint:errcheck // read only
		if _, err := tx.Exec(t.Context(), "SET LOCAL plan_cache_mode = force_custom_plan"); err != nil {
			t.Fatal(err)
		}
		a, err := b.store.AnswerTx(t.Context(), tx, "退款多久到账", "zh")
		if err != nil || !a.Found {
			t.Fatalf("AnswerTx = %+v, %v", a, err)
		}
		var mode string
		if err := tx.QueryRow(t.Context(), "SELECT current_setting('plan_cache_mode')").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if mode != "force_custom_plan" {
			t.Errorf("plan_cache_mode after the search = %q, want the transaction's force_custom_plan", mode)
		}
	})

	t.Run("SeedOnlyOnce", func(t *testing.T) {
		t.Parallel()
		b := seeded(t)
		n1, _ := b.store.Count(t.Context())
		seeded, err := b.store.SeedDemo(t.Context())
		n2, _ := b.store.Count(t.Context())
		if err != nil || seeded || n1 != n2 || n1 == 0 {
			t.Fatalf("second SeedDemo = %v, %v; count %d then %d", seeded, err, n1, n2)
		}
	})

	t.Run("UpsertNewVersionAndRejectsBadEntries", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		e := retrieval.Entry{Key: "gift-wrap", Language: "en", Title: "Gift wrapping", Question: "Do you offer gift wrapping?", Answer: "Yes, for 5 CNY."}
		if err := b.store.Upsert(t.Context(), []retrieval.Entry{e}); err != nil {
			t.Fatal(err)
		}
		e.Answer = "Yes, free of charge."
		if err := b.store.Upsert(t.Context(), []retrieval.Entry{e}); err != nil {
			t.Fatal(err)
		}
		a, err := b.store.Answer(t.Context(), "Do you offer gift wrapping?", "en")
		if err != nil || a.Source.Version != 2 || !strings.Contains(a.Text, "free") {
			t.Fatalf("Answer after update = %+v, %v; want version 2, new text", a, err)
		}
		err = b.store.Upsert(t.Context(), []retrieval.Entry{{Key: "x", Language: "en"}})
		if kefu.CodeOf(err) != kefu.Invalid {
			t.Fatalf("Upsert of an empty entry: %v, want code invalid", err)
		}
	})

	t.Run("EmptyStoreIsNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		a, err := b.store.Answer(t.Context(), "anything", "en")
		if err != nil || a.Found {
			t.Fatalf("Answer on an empty store = %+v, %v", a, err)
		}
	})
}

func TestParseYAMLErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"syntax", "entries:\n  - key: a\n    en: [\n", "knowledge file"},
		{"no key", "entries:\n  - en: {question: q, answer: a}\n", "has no key"},
		{"unknown field", "entries:\n  - key: a\n    en: {question: q, answer: a, bogus: 1}\n", "bogus"},
		{"no answer", "entries:\n  - key: a\n    en: {question: q}\n", "needs a question and an answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := retrieval.ParseYAML([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseYAML(%q) = %v, want error containing %q", tt.in, err, tt.want)
			}
		})
	}
	entries, err := retrieval.DemoEntries()
	if err != nil || len(entries) < 20 {
		t.Fatalf("DemoEntries = %d entries, %v", len(entries), err)
	}
}
