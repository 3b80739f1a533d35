package retrieval_test

import (
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/kefu-dev/kefu/internal/pgtest"
	"github.com/kefu-dev/kefu/nlu"
	"github.com/kefu-dev/kefu/retrieval"
)

// TestParseImport: every bad row is reported with its line, and none of the file is taken.
func TestParseImport(t *testing.T) {
	t.Parallel()
	jsonl := `{"id":"a","question":"How long is shipping?","answer":"2 days.","alternatives":["delivery time"]}

{"id":"b","question":"","answer":"x"}
not json
{"id":"a","question":"dup","answer":"y"}
{"id":"c","question":"q","answer":"z","colour":"red"}
{"id":"d","question":"退款多久","answer":"1-3天","language":"zh"}
`
	entries, errs := retrieval.ParseImport(strings.NewReader(jsonl), "jsonl", "en")
	want := []string{"line 3: question is empty", "line 4: not a JSON object", `line 5: id "a" (en) is also on line 1`, "line 6: not a JSON object"}
	if len(errs) != len(want) {
		t.Fatalf("errors = %v, want %d", errs, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(errs[i].Error(), w) {
			t.Errorf("error %d = %q, want it to start %q", i, errs[i], w)
		}
	}
	if len(entries) != 2 || entries[1].Language != "zh" || entries[0].Alternates[0] != "delivery time" {
		t.Errorf("entries = %+v", entries)
	}
	csv := "id,question,answer,alternatives\n" +
		"a,How long is shipping?,2 days.,delivery time|shipping time\n" +
		"b,\"unterminated,x\n"
	entries, errs = retrieval.ParseImport(strings.NewReader(csv), "csv", "en")
	if len(entries) != 1 || len(entries[0].Alternates) != 2 || len(errs) != 1 || errs[0].Line != 3 {
		t.Errorf("csv: entries %+v, errors %v", entries, errs)
	}
	if _, errs := retrieval.ParseImport(strings.NewReader("id,text\n1,x\n"), "csv", "en"); len(errs) != 1 || errs[0].Line != 1 {
		t.Errorf("csv without the question column: %v", errs)
	}
}

// TestEvaluateDemo measures the demo shop's query set in the three modes: the numbers are
// the README's, and a floor keeps a change that breaks search from passing.
func TestEvaluateDemo(t *testing.T) {
	t.Parallel()
	if err := nlu.InitRuntime(nlu.FindRuntime()); err != nil {
		t.Fatal(err)
	}
	model, err := nlu.Load("../models/intent")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { model.Close() })
	pool := pgtest.Schema(t, retrieval.Migrations())
	kb := retrieval.NewStore(pool, model, retrieval.DefaultThreshold, slog.New(slog.DiscardHandler))
	if _, err := kb.SeedDemoFAQ(t.Context()); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("demo/eval/queries.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	queries, err := retrieval.ReadEvalQueries(f)
	if err != nil || len(queries) < 300 {
		t.Fatalf("%d queries, %v", len(queries), err)
	}
	recall := map[string]float64{}
	for _, mode := range []string{retrieval.ModeDense, retrieval.ModeLexical, retrieval.ModeHybrid} {
		o := retrieval.DefaultSearch
		o.Mode = mode
		kb.SetSearch(o)
		r, err := kb.Evaluate(t.Context(), queries, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%+v", r)
		recall[mode] = r.RecallAt5
	}
	if recall[retrieval.ModeHybrid] < 0.85 || recall[retrieval.ModeHybrid] < recall[retrieval.ModeDense] {
		t.Errorf("hybrid recall@5 %.3f (dense %.3f, lexical %.3f)", recall[retrieval.ModeHybrid], recall[retrieval.ModeDense], recall[retrieval.ModeLexical])
	}
}

func TestSplitQueries(t *testing.T) {
	t.Parallel()
	var qs []retrieval.EvalQuery
	for _, s := range []string{"运费多少", "refund?", "发票", "where is my order", "a", "b", "c", "d"} {
		qs = append(qs, retrieval.EvalQuery{Query: s})
	}
	dev, _ := retrieval.SplitQueries(qs, "dev")
	test, _ := retrieval.SplitQueries(qs, "test")
	if len(dev)+len(test) != len(qs) || len(dev) == 0 || len(test) == 0 {
		t.Fatalf("dev %d + test %d != %d", len(dev), len(test), len(qs))
	}
	for _, d := range dev {
		for _, x := range test {
			if d.Query == x.Query {
				t.Fatalf("%q is in both halves", d.Query)
			}
		}
	}
	if _, err := retrieval.SplitQueries(qs, "train"); err == nil {
		t.Error("an unknown split is accepted")
	}
}
