package retrieval_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kefu-dev/kefu"
	"github.com/kefu-dev/kefu/internal/pgtest"
	"github.com/kefu-dev/kefu/retrieval"
)

// demoStore is a store on a schema of its own, seeded with the demo knowledge base.
func demoStore(t *testing.T, enc retrieval.Embedder) *retrieval.Store {
	t.Helper()
	pool := pgtest.Schema(t, retrieval.Migrations())
	kb := retrieval.NewStore(pool, enc, retrieval.DefaultThreshold, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if _, err := kb.SeedDemo(t.Context()); err != nil {
		t.Fatal(err)
	}
	return kb
}

// TestEditing walks an entry through the editor's life: draft, trial, publish, diff,
// rollback, archive, and the errors on the way.
func TestEditing(t *testing.T) {
	t.Parallel()
	enc := encoder(t)
	kb := demoStore(t, enc)
	ctx := t.Context()
	const ed = "editor@kefu.local"
	ask := func(q string) retrieval.Answer {
		t.Helper()
		a, err := kb.Answer(ctx, q, "zh")
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	old := ask("退款多久到账？")
	if !old.Found || old.Source.Key != "refund-time" || old.Source.Version != 2 {
		t.Fatalf("before: %+v, want refund-time v2 (the demo has one earlier version)", old.Source)
	}

	// A draft does not answer customers; a trial with it does.
	revs, err := kb.History(ctx, "refund-time", "zh")
	if err != nil || len(revs) != 2 || !revs[0].Live || revs[1].Live {
		t.Fatalf("History = %+v, %v", revs, err)
	}
	const marker = "（测试标记：退款可在App中查看进度。）"
	d := retrieval.Draft{Key: "refund-time", Language: "zh", Title: revs[0].Title, Question: revs[0].Question,
		Alternates: revs[0].Alternates, Answer: revs[0].Answer + marker, Note: "加一句进度说明", BaseVersion: 2}
	draft, err := kb.SaveDraft(ctx, ed, d)
	if err != nil || draft.Version != 3 || draft.State != retrieval.StateDraft {
		t.Fatalf("SaveDraft = %+v, %v", draft, err)
	}
	d.BaseVersion = 3
	d.Note = "再改一次"
	if again, err := kb.SaveDraft(ctx, ed, d); err != nil || again.Version != 3 {
		t.Fatalf("second save = v%d, %v, want the same draft", again.Version, err)
	}
	if a := ask("退款多久到账？"); strings.Contains(a.Text, marker) {
		t.Fatal("customers see the draft before it is published")
	}
	trial, err := kb.Try(ctx, "退款多久到账？", "zh", "refund-time")
	if err != nil || !strings.Contains(trial.Answer.Text, marker) || trial.Draft != 3 || len(trial.Passages) == 0 {
		t.Fatalf("Try with draft = %+v, %v", trial, err)
	}
	if a := ask("退款多久到账？"); strings.Contains(a.Text, marker) {
		t.Fatal("a trial leaked the draft to customers")
	}

	// A stale save is refused, and says by whom.
	stale := d
	stale.BaseVersion = 2
	if _, err := kb.SaveDraft(ctx, "other@kefu.local", stale); kefu.CodeOf(err) != kefu.Conflict || !strings.Contains(kefu.MessageOf(err), ed) {
		t.Fatalf("stale save: %v, want a Conflict naming %s", err, ed)
	}

	pub, err := kb.Publish(ctx, ed, "refund-time", "zh")
	if err != nil || pub.Version != 3 || !pub.Live {
		t.Fatalf("Publish = %+v, %v", pub, err)
	}
	if a := ask("退款多久到账？"); !strings.Contains(a.Text, marker) || a.Source.Version != 3 {
		t.Fatalf("after publish: v%d %q", a.Source.Version, a.Text)
	}
	diff, err := kb.Diff(ctx, "refund-time", "zh", 2, 3)
	if err != nil || len(diff) != 1 || diff[0].Field != "answer" {
		t.Fatalf("Diff = %+v, %v", diff, err)
	}
	inserted := ""
	for _, op := range diff[0].Ops {
		if op.Op == "+" {
			inserted += op.Text
		}
	}
	if inserted != marker {
		t.Errorf("inserted text = %q, want %q", inserted, marker)
	}

	// Rollback publishes version 2's content as version 4.
	rb, err := kb.Rollback(ctx, ed, "refund-time", "zh", 2)
	if err != nil || rb.Version != 4 || rb.Answer != revs[0].Answer {
		t.Fatalf("Rollback = %+v, %v", rb, err)
	}
	if a := ask("退款多久到账？"); strings.Contains(a.Text, marker) || a.Source.Version != 4 {
		t.Fatalf("after rollback: v%d %q", a.Source.Version, a.Text)
	}

	// Errors change nothing.
	for name, err := range map[string]error{
		"publish without draft": func() error { _, err := kb.Publish(ctx, ed, "refund-time", "zh"); return err }(),
		"rollback to unknown":   func() error { _, err := kb.Rollback(ctx, ed, "refund-time", "zh", 99); return err }(),
		"unknown entry":         func() error { _, err := kb.History(ctx, "no-such-entry", "zh"); return err }(),
		"discard without draft": kb.Discard(ctx, ed, "refund-time", "zh"),
	} {
		if kefu.CodeOf(err) != kefu.NotFound {
			t.Errorf("%s: %v, want NotFound", name, err)
		}
	}
	for name, d := range map[string]retrieval.Draft{
		"bad key":      {Key: "a b", Language: "zh", Question: "q", Answer: "a"},
		"bad language": {Key: "k", Language: "Chinese", Question: "q", Answer: "a"},
		"bad kind":     {Key: "k", Language: "zh", Kind: "video", Question: "q", Answer: "a"},
		"bad link":     {Key: "k", Language: "zh", Question: "q", Answer: "a", Link: "javascript:alert(1)"},
		"bad utf-8":    {Key: "k", Language: "zh", Question: "q\xff", Answer: "a"},
		"huge answer":  {Key: "k", Language: "zh", Question: "q", Answer: strings.Repeat("长", 10000)},
	} {
		if _, err := kb.SaveDraft(ctx, ed, d); kefu.CodeOf(err) != kefu.Invalid {
			t.Errorf("%s: %v, want Invalid", name, err)
		}
	}
	// A new entry without an answer may be saved as a draft, not published.
	if _, err := kb.SaveDraft(ctx, ed, retrieval.Draft{Key: "gift-card-expiry", Language: "zh", Question: "礼品卡会过期吗？"}); err != nil {
		t.Fatal(err)
	}
	if _, err := kb.Publish(ctx, ed, "gift-card-expiry", "zh"); kefu.CodeOf(err) != kefu.Invalid {
		t.Fatalf("publishing an entry without an answer: %v, want Invalid", err)
	}
	if _, err := kb.SaveDraft(ctx, ed, retrieval.Draft{Key: "refund-time", Language: "zh", Question: "q", Answer: "a"}); kefu.CodeOf(err) != kefu.Conflict {
		t.Fatalf("creating an entry that exists: %v, want Conflict", err)
	}

	// Archive takes it away from customers; rolling back brings it back.
	if err := kb.Archive(ctx, ed, "refund-time", "zh"); err != nil {
		t.Fatal(err)
	}
	if a := ask("退款多久到账？"); a.Found && a.Source.Key == "refund-time" && a.Source.Language == "zh" {
		t.Fatal("an archived entry still answers")
	}
	if _, err := kb.Rollback(ctx, ed, "refund-time", "zh", 3); err != nil {
		t.Fatal(err)
	}
	if a := ask("退款多久到账？"); !strings.Contains(a.Text, marker) {
		t.Fatalf("after restoring v3: %q", a.Text)
	}

	// The list shows the entry's state; the audit trail has every action, by whom.
	list, total, err := kb.List(ctx, retrieval.ListOptions{Query: "退款", Language: "zh"})
	if err != nil || total == 0 {
		t.Fatalf("List = %d, %v", total, err)
	}
	found := false
	for _, s := range list {
		if s.Key == "refund-time" {
			found = s.LiveVersion == 5 && s.Version == 5 && len(s.Translations) == 1 && s.Translations[0] == "en"
		}
	}
	if !found {
		t.Errorf("List has no refund-time at live v5 with an en translation: %+v", list)
	}
	if drafts, _, _ := kb.List(ctx, retrieval.ListOptions{State: "draft"}); len(drafts) != 1 || drafts[0].Key != "gift-card-expiry" {
		t.Errorf("drafts = %+v, want gift-card-expiry only", drafts)
	}
	trail, err := kb.Audit(ctx, "refund-time", 100)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, a := range trail {
		if a.Actor == ed {
			actions = append(actions, a.Action)
		}
	}
	want := "rollback archive rollback publish update_draft create_draft"
	if got := strings.Join(actions, " "); got != want {
		t.Errorf("audit = %q, want %q", got, want)
	}
}

// TestConcurrentEditors: of two editors saving over the same version at once, one wins and
// the other gets a Conflict; publishing at once publishes once.
func TestConcurrentEditors(t *testing.T) {
	t.Parallel()
	enc := encoder(t)
	pool := pgtest.Schema(t, retrieval.Migrations())
	kb := retrieval.NewStore(pool, enc, retrieval.DefaultThreshold, slog.New(slog.NewTextHandler(t.Output(), nil)))
	ctx := t.Context()
	if err := kb.Upsert(ctx, []retrieval.Entry{{Key: "k", Language: "en", Question: "q?", Answer: "a."}}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = kb.SaveDraft(ctx, "ed", retrieval.Draft{Key: "k", Language: "en", Question: "q?", Answer: "new a.", BaseVersion: 1})
		})
	}
	wg.Wait()
	ok, conflicts := 0, 0
	for _, err := range errs {
		switch kefu.CodeOf(err) {
		case "":
			ok++
		case kefu.Conflict:
			conflicts++
		default:
			t.Errorf("save: %v", err)
		}
	}
	if ok != 1 || conflicts != 7 {
		t.Fatalf("saves: %d ok, %d conflicts; want 1 and 7", ok, conflicts)
	}
	for i := range errs {
		wg.Go(func() { _, errs[i] = kb.Publish(ctx, "ed", "k", "en") })
	}
	wg.Wait()
	ok = 0
	for _, err := range errs {
		if err == nil {
			ok++
		}
	}
	revs, _ := kb.History(ctx, "k", "en")
	if ok != 1 || len(revs) != 2 || !revs[0].Live {
		t.Fatalf("publishes: %d ok, history %+v", ok, revs)
	}
}

// TestUsage: hits, gaps grouped by meaning, feedback and related questions.
func TestUsage(t *testing.T) {
	t.Parallel()
	enc := encoder(t)
	kb := demoStore(t, enc)
	ctx := t.Context()
	log := retrieval.NewUsageLog(kb, 0)
	runCtx, stop := context.WithCancel(t.Context())
	go log.Run(runCtx, 10*time.Millisecond)
	// Three sessions ask about refunds then shipping fees; gaps in two wordings of one
	// question and one of another.
	for s := int64(1); s <= 3; s++ {
		log.Add(retrieval.Usage{SessionID: s, Question: "退款多久到账", Language: "zh", Key: "refund-time", Score: 0.9})
		log.Add(retrieval.Usage{SessionID: s, Question: "运费多少", Language: "zh", Key: "shipping-fee", Score: 0.9})
	}
	log.Add(retrieval.Usage{SessionID: 4, Question: "你们卖二手车吗", Language: "zh"})
	log.Add(retrieval.Usage{SessionID: 5, Question: "你们卖二手车吗", Language: "zh"})
	log.Add(retrieval.Usage{SessionID: 6, Question: "你们卖二手车吗？", Language: "zh"})
	log.Add(retrieval.Usage{SessionID: 7, Question: "能帮我写作业吗", Language: "zh"})
	stop()
	log.Wait()

	list, _, err := kb.List(ctx, retrieval.ListOptions{Query: "refund-time", Language: "zh"})
	if err != nil || len(list) != 1 || list[0].Hits != 3 || list[0].LastHit == nil {
		t.Fatalf("List = %+v, %v; want 3 hits", list, err)
	}
	gaps, err := kb.Gaps(ctx, 30, 10)
	if err != nil || len(gaps) == 0 {
		t.Fatalf("Gaps = %+v, %v", gaps, err)
	}
	if gaps[0].Count != 3 || !strings.Contains(gaps[0].Question, "二手车") {
		t.Errorf("biggest gap = %+v, want the used-car question asked 3 times", gaps[0])
	}
	if err := kb.CloseGap(ctx, "ed", gaps[0].IDs, "dismiss"); err != nil {
		t.Fatal(err)
	}
	if again, _ := kb.Gaps(ctx, 30, 10); len(again) != len(gaps)-1 {
		t.Errorf("after dismissing: %d gaps, want %d", len(again), len(gaps)-1)
	}
	if err := kb.CloseGap(ctx, "ed", gaps[0].IDs, "dismiss"); kefu.CodeOf(err) != kefu.NotFound {
		t.Errorf("dismissing twice: %v, want NotFound", err)
	}

	related, err := kb.Related(ctx, "refund-time", "zh", 3)
	if err != nil || len(related) == 0 || !strings.Contains(related[0], "运费") {
		t.Errorf("Related = %q, %v; want the shipping-fee question first (asked in the same sessions)", related, err)
	}

	src := retrieval.Source{Key: "refund-time", Language: "zh", Version: 2}
	if err := kb.Vote(ctx, retrieval.Feedback{SessionID: 1, Seq: 2, Source: src, Vote: -1}); err != nil {
		t.Fatal(err)
	}
	if err := kb.Vote(ctx, retrieval.Feedback{SessionID: 1, Seq: 2, Source: src, Vote: 1}); err != nil {
		t.Fatal(err)
	}
	if err := kb.Vote(ctx, retrieval.Feedback{SessionID: 1, Seq: 2, Source: src, Vote: 5}); kefu.CodeOf(err) != kefu.Invalid {
		t.Errorf("vote 5: %v, want Invalid", err)
	}
	list, _, _ = kb.List(ctx, retrieval.ListOptions{Query: "refund-time", Language: "zh"})
	if list[0].Up != 1 || list[0].Down != 0 {
		t.Errorf("votes = +%d -%d, want +1 -0 (the second vote replaces the first)", list[0].Up, list[0].Down)
	}
}

// renamed is an embedder under another name (a new version of a model, say), slowed down so
// that a re-embedding takes long enough to be searched during.
type renamed struct {
	retrieval.Embedder
	id    string
	delay time.Duration
}

func (r renamed) EmbedderID() string { return r.id }
func (r renamed) Dim() int           { return r.Embedder.(interface{ Dim() int }).Dim() }
func (r renamed) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	if len(texts) > 1 {
		time.Sleep(r.delay)
	}
	return r.Embedder.Embed(ctx, texts)
}

// TestReembedWithoutDowntime: while the store moves to a new embedder, every question is still
// answered, an entry published meanwhile is answered after the switch, and the old vectors go.
func TestReembedWithoutDowntime(t *testing.T) {
	t.Parallel()
	enc := encoder(t)
	kb := demoStore(t, enc)
	ctx := t.Context()
	next := renamed{Embedder: enc, id: enc.EmbedderID() + "-next", delay: 30 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- kb.Reembed(ctx, next, nil) }()
	asked, published := 0, false
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			running = false
		default:
		}
		a, err := kb.Answer(ctx, "退款多久到账？", "zh")
		if err != nil || !a.Found || a.Source.Key != "refund-time" {
			t.Fatalf("during the re-embedding (after %d questions): %+v, %v", asked, a.Source, err)
		}
		asked++
		if !published && asked == 3 {
			published = true
			_, err := kb.SaveDraft(ctx, "ed", retrieval.Draft{Key: "vinyl-care", Language: "zh", Question: "黑胶唱片怎么保养？",
				Answer: "黑胶唱片请竖放保存，避免阳光直射，用防静电刷清洁。"})
			if err == nil {
				_, err = kb.Publish(ctx, "ed", "vinyl-care", "zh")
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if st := kb.Reembedding(); st == nil || !st.Finished || st.Error != "" || st.Done != st.Total || kb.EmbedderID() != next.id {
		t.Fatalf("status %+v, serving %s", st, kb.EmbedderID())
	}
	cov, total, err := kb.Coverage(ctx)
	if err != nil || len(cov) != 1 || cov[next.id] != total {
		t.Fatalf("coverage %v of %d, %v: want every entry in the new space only", cov, total, err)
	}
	if a, _ := kb.Answer(ctx, "黑胶唱片怎么保养", "zh"); !a.Found || a.Source.Key != "vinyl-care" {
		t.Fatalf("the entry published during the re-embedding: %+v", a.Source)
	}
	t.Logf("%d questions answered while re-embedding", asked)
}
