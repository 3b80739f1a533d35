package nlu_test

import (
	"context"
	"math"
	"sync"
	"testing"

	"github.com/kefu-dev/kefu/nlu"
)

// mustClassifier loads the shipped demo model in the real ONNX Runtime.
func mustClassifier(t testing.TB) *nlu.Classifier {
	t.Helper()
	if err := nlu.InitRuntime(nlu.FindRuntime()); err != nil {
		t.Fatalf("%v (run the tests with scripts/test; fail, never skip)", err)
	}
	c, err := nlu.Load(modelDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestUnderstand(t *testing.T) {
	t.Parallel()
	c := mustClassifier(t)
	tests := []struct{ text, intent, lang string }{
		{"你好", "greeting", "zh"},
		{"hello", "greeting", "en"},
		{"转人工", "human_agent", "zh"},
		{"talk to a human", "human_agent", "en"},
		{"谢谢", "thanks", "zh"},
		{"thank you", "thanks", "en"},
		{"我要退款", "refund", "zh"},
		{"where is my order", "order_status", "en"},
	}
	for _, tt := range tests {
		res, err := c.Understand(t.Context(), tt.text)
		if err != nil {
			t.Fatal(err)
		}
		if res.Intent != tt.intent || res.Language != tt.lang {
			t.Errorf("Understand(%q) = %s/%s (%.2f, ranking %v), want %s/%s", tt.text, res.Intent, res.Language, res.Confidence, res.Ranking, tt.intent, tt.lang)
		}
		var sum float64
		for _, s := range res.Ranking {
			sum += s.Confidence
		}
		if sum > 1.0001 || res.Confidence <= 0 || res.ModelVersion == "" {
			t.Errorf("Understand(%q): confidences sum to %f, top %f, version %q", tt.text, sum, res.Confidence, res.ModelVersion)
		}
	}
}

func TestEmbed(t *testing.T) {
	t.Parallel()
	c := mustClassifier(t)
	texts := []string{"多久能发货", "how long does shipping take", "忘记密码怎么办", ""}
	vecs, err := c.Embed(t.Context(), texts)
	if err != nil {
		t.Fatal(err)
	}
	if len(vecs) != len(texts) {
		t.Fatalf("Embed returned %d vectors for %d texts", len(vecs), len(texts))
	}
	for i, v := range vecs {
		if len(v) != c.Dim() {
			t.Fatalf("vector %d has %d dimensions, want %d", i, len(v), c.Dim())
		}
		var n float64
		for _, x := range v {
			n += float64(x) * float64(x)
		}
		if math.Abs(n-1) > 1e-3 {
			t.Errorf("vector %d (%q) has norm² %f, want 1", i, texts[i], n)
		}
	}
	// A batch gives the same vectors as one at a time.
	one, err := c.Embed(t.Context(), texts[:1])
	if err != nil {
		t.Fatal(err)
	}
	for j := range one[0] {
		if math.Abs(float64(one[0][j]-vecs[0][j])) > 1e-4 {
			t.Fatalf("batched and single embeddings differ at %d: %f vs %f", j, vecs[0][j], one[0][j])
		}
	}
	// A message Understand just saw is embedded from the cache, with the same vector.
	const msg = "我的快递什么时候到"
	if _, err := c.Understand(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	cached, err := c.Embed(t.Context(), []string{msg})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := c.Embed(t.Context(), []string{msg, "padding forces a new run"})
	if err != nil {
		t.Fatal(err)
	}
	for j := range fresh[0] {
		if math.Abs(float64(cached[0][j]-fresh[0][j])) > 1e-4 {
			t.Fatalf("cached and computed embeddings differ at %d: %f vs %f", j, cached[0][j], fresh[0][j])
		}
	}
}

func TestUnderstandConcurrent(t *testing.T) {
	t.Parallel()
	c := mustClassifier(t)
	want, err := c.Understand(t.Context(), "我要退货")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			got, err := c.Understand(context.Background(), "我要退货")
			if err != nil || got.Intent != want.Intent || math.Abs(got.Confidence-want.Confidence) > 1e-6 {
				t.Errorf("concurrent Understand = %v, %v; want %v", got.Intent, err, want.Intent)
			}
		})
	}
	wg.Wait()
}

func TestUnderstandCancelled(t *testing.T) {
	t.Parallel()
	c := mustClassifier(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	// A cancelled context either fails fast or still answers: it never hangs or panics.
	if _, err := c.Understand(ctx, "hi"); err != nil && ctx.Err() == nil {
		t.Fatal(err)
	}
}

func BenchmarkUnderstand(b *testing.B) {
	c := mustClassifier(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Understand(b.Context(), "我的订单到哪了，怎么还没收到货"); err != nil {
			b.Fatal(err)
		}
	}
}
