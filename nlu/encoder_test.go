package nlu_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kefu-dev/kefu"
	"github.com/kefu-dev/kefu/nlu"
)

// encoderDir is the shipped sentence encoder, trained by training/train_encoder.py.
const encoderDir = "../models/encoder"

// mustEncoder loads the shipped sentence encoder in the real ONNX Runtime.
func mustEncoder(t testing.TB) *nlu.Encoder {
	t.Helper()
	if err := nlu.InitRuntime(nlu.FindRuntime()); err != nil {
		t.Fatalf("%v (run the tests with scripts/test; fail, never skip)", err)
	}
	e, err := nlu.LoadEncoder(encoderDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func cosine(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func TestEncoderEmbed(t *testing.T) {
	t.Parallel()
	e := mustEncoder(t)
	meta := e.Meta()
	if !strings.HasPrefix(meta.Version, "encoder-") || meta.Kind != "encoder" || e.EmbedderID() != "onnx-encoder:"+meta.Version {
		t.Errorf("version %q, kind %q, EmbedderID %q; want encoder-…, encoder, onnx-encoder:<version>", meta.Version, meta.Kind, e.EmbedderID())
	}
	texts := []string{"多久能发货", "how long does shipping take", "忘记密码怎么办", "", "ｄｅｌｉｖｅｒｙ　ｔｉｍｅ？", strings.Repeat("退款 refund ", 100)}
	vecs, err := e.Embed(t.Context(), texts)
	if err != nil {
		t.Fatal(err)
	}
	if len(vecs) != len(texts) || e.Dim() != meta.Hidden || e.Dim() < 32 {
		t.Fatalf("Embed returned %d vectors for %d texts; Dim() = %d, model.json hidden %d", len(vecs), len(texts), e.Dim(), meta.Hidden)
	}
	for i, v := range vecs {
		if len(v) != e.Dim() {
			t.Fatalf("vector %d has %d dimensions, want %d", i, len(v), e.Dim())
		}
		if n := cosine(v, v); math.Abs(n-1) > 1e-3 {
			t.Errorf("vector %d (%.20q) has norm² %f, want 1", i, texts[i], n)
		}
	}
	if empty, err := e.Embed(t.Context(), nil); err != nil || len(empty) != 0 {
		t.Errorf("Embed(nil) = %d vectors, %v; want none, no error", len(empty), err)
	}
}

// TestEncoderParaphrases checks what the encoder is for: a question is closer to another
// wording of it than to a question about something else, in Chinese and in English, typos
// included. None of these sentences is in the training data.
func TestEncoderParaphrases(t *testing.T) {
	t.Parallel()
	e := mustEncoder(t)
	tests := []struct{ text, paraphrase, unrelated string }{
		{"今天下单什么时候能寄出来", "付款以后多久发货呀", "我的密码忘了登不上去"},
		{"退回去的钱几天能到我卡上", "退款一般要等多久", "可以开公司抬头的发票吗"},
		{"收件地址填错了怎么改", "能帮我换一下收货地址吗", "你们几点下班"},
		{"when will my parcel be sent out", "how soon do you dispatch orders", "i can't log into my account"},
		{"i want my money back for the returned shoes", "how long until my refund comes through", "do you gift wrap orders"},
		{"can i change where the order is delivered", "i need to update my shipping adress", "is this item authentic"},
	}
	for _, tt := range tests {
		v, err := e.Embed(t.Context(), []string{tt.text, tt.paraphrase, tt.unrelated})
		if err != nil {
			t.Fatal(err)
		}
		near, far := cosine(v[0], v[1]), cosine(v[0], v[2])
		if near <= far {
			t.Errorf("%q: paraphrase %q at cosine %.3f, unrelated %q at %.3f; want the paraphrase closer", tt.text, tt.paraphrase, near, tt.unrelated, far)
		}
	}
}

func TestEncoderBatchMatchesSingle(t *testing.T) {
	t.Parallel()
	e := mustEncoder(t)
	// More texts than one run takes, of every length, so that runs go in parallel and pad.
	var texts []string
	for i := range 80 {
		texts = append(texts, fmt.Sprintf("第%d个订单什么时候发货 order %d %s", i, i, strings.Repeat("快", i%23)))
	}
	batch, err := e.Embed(t.Context(), texts)
	if err != nil {
		t.Fatal(err)
	}
	// Single texts asked for at the same moment share micro-batches: each must still get its
	// own vector.
	singles := make([][]float32, len(texts))
	errs := make([]error, len(texts))
	var wg sync.WaitGroup
	for i, text := range texts {
		wg.Go(func() {
			var one [][]float32
			one, errs[i] = e.Embed(t.Context(), []string{text})
			if errs[i] == nil {
				singles[i] = one[0]
			}
		})
	}
	wg.Wait()
	for i, text := range texts {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		for j := range singles[i] {
			if math.Abs(float64(singles[i][j]-batch[i][j])) > 1e-4 {
				t.Fatalf("Embed(%q): batched and single vectors differ at %d: %f vs %f", text, j, batch[i][j], singles[i][j])
			}
		}
	}
}

func TestEncoderClosed(t *testing.T) {
	t.Parallel()
	e := mustEncoder(t)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Embed(t.Context(), []string{"还在吗"}); kefu.CodeOf(err) != kefu.Unavailable {
		t.Fatalf("Embed after Close = %v; want unavailable", err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("a second Close = %v", err)
	}
}

func TestEncoderCancelled(t *testing.T) {
	t.Parallel()
	e := mustEncoder(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	texts := make([]string, 100)
	for i := range texts {
		texts[i] = fmt.Sprintf("question %d", i)
	}
	if vecs, err := e.Embed(ctx, texts); !errors.Is(err, context.Canceled) {
		t.Fatalf("Embed with a cancelled context = %d vectors, %v; want context.Canceled", len(vecs), err)
	}
}

// TestEncoderTokenizerGolden compares the Go tokenizer with the trainer's on the vectors the
// trainer wrote next to the encoder.
func TestEncoderTokenizerGolden(t *testing.T) {
	t.Parallel()
	e := mustEncoder(t)
	n, err := e.Tokenizer().CheckGolden(filepath.Join(encoderDir, "tokenizer_golden.jsonl"), e.Meta().MaxLen)
	if err != nil {
		t.Error(err)
	}
	if n < 20 {
		t.Errorf("%d golden vectors, want at least 20", n)
	}
}

func TestLoadEncoderErrors(t *testing.T) {
	t.Parallel()
	if err := nlu.InitRuntime(nlu.FindRuntime()); err != nil {
		t.Fatalf("%v (run the tests with scripts/test; fail, never skip)", err)
	}
	noVocab := hfCopy(t, encoderDir)
	hfRemove(t, noVocab, "vocab.txt")
	tests := []struct {
		name string
		dir  string
		code kefu.Code
		want string
	}{
		{"NoFolder", filepath.Join(t.TempDir(), "nope"), kefu.NotFound, "nope cannot be read"},
		{"EmptyFolder", t.TempDir(), kefu.NotFound, "neither model.json"},
		{"NoVocab", noVocab, kefu.NotFound, "vocab.txt is missing"},
	}
	for _, tt := range tests {
		e, err := nlu.LoadEncoder(tt.dir)
		if err == nil {
			e.Close()
			t.Errorf("%s: LoadEncoder(%s) succeeded", tt.name, tt.dir)
			continue
		}
		if kefu.CodeOf(err) != tt.code || !strings.Contains(kefu.MessageOf(err), tt.want) {
			t.Errorf("%s: LoadEncoder error %q (%s), want %s mentioning %q", tt.name, err, kefu.CodeOf(err), tt.code, tt.want)
		}
	}
	// The encoder is no intent model: Load says what it is instead of missing labels.json.
	c, err := nlu.Load(encoderDir)
	if err == nil {
		c.Close()
		t.Fatal("Load(encoder folder) succeeded, want an error")
	}
	if kefu.CodeOf(err) != kefu.Invalid || !strings.Contains(kefu.MessageOf(err), "sentence encoder") {
		t.Errorf("Load(encoder folder) = %q, want kefu.Invalid saying it is a sentence encoder", err)
	}
}

// TestLoadEncoderIntentModel: an intent model's folder loads as an encoder too, giving the
// classifier's own embedding.
func TestLoadEncoderIntentModel(t *testing.T) {
	t.Parallel()
	c := mustClassifier(t)
	e, err := nlu.LoadEncoder(modelDir)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	texts := []string{"我要退款", "where is my order"}
	want, err := c.Embed(t.Context(), texts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Embed(t.Context(), texts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range texts {
		if c := cosine(got[i], want[i]); c < 0.9999 {
			t.Errorf("%q: encoder and classifier vectors at cosine %f, want the same vector", texts[i], c)
		}
	}
}

// TestLoadEncoderHF loads Hugging Face and sentence-transformers style exports.
func TestLoadEncoderHF(t *testing.T) {
	t.Parallel()
	m := hfWrite(t, nil, "--outputs", "last_hidden_state")
	load := func(t *testing.T, dir string) *nlu.Encoder {
		t.Helper()
		if err := nlu.InitRuntime(nlu.FindRuntime()); err != nil {
			t.Fatal(err)
		}
		e, err := nlu.LoadEncoder(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	check := func(t *testing.T, e *nlu.Encoder, ref func(tinyRef) []float64) {
		t.Helper()
		vecs, err := e.Embed(t.Context(), tinyTexts)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range vecs {
			hfCheckVector(t, tinyTexts[i], v, ref(m.ref[i]))
		}
	}

	t.Run("MeanPooling", func(t *testing.T) {
		t.Parallel()
		e := load(t, m.dir)
		if e.EmbedderID() != "onnx-encoder:hf:tiny-bert" || e.Dim() != tinyHidden || e.Meta().MaxLen != tinyMaxPos {
			t.Errorf("EmbedderID %q, Dim %d, max_len %d; want onnx-encoder:hf:tiny-bert, %d, %d", e.EmbedderID(), e.Dim(), e.Meta().MaxLen, tinyHidden, tinyMaxPos)
		}
		check(t, e, func(r tinyRef) []float64 { return r.Mean })
	})

	t.Run("SentenceTransformersCLS", func(t *testing.T) {
		t.Parallel()
		dir := hfCopy(t, m.dir)
		hfWriteFile(t, filepath.Join(dir, "modules.json"), `[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},`+
			`{"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},`+
			`{"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}]`)
		if err := os.Mkdir(filepath.Join(dir, "1_Pooling"), 0o755); err != nil {
			t.Fatal(err)
		}
		hfWriteFile(t, filepath.Join(dir, "1_Pooling", "config.json"), `{"word_embedding_dimension": 16, "pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}`)
		hfWriteFile(t, filepath.Join(dir, "sentence_bert_config.json"), `{"max_seq_length": 8}`)
		e := load(t, dir)
		if e.Meta().MaxLen != 8 {
			t.Errorf("max_len %d, want sentence_bert_config.json's 8", e.Meta().MaxLen)
		}
		// The tiny model has no attention: [CLS]'s state is the same however the text is cut.
		check(t, e, func(r tinyRef) []float64 { return r.CLS })
	})

	t.Run("Broken", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name   string
			mutate func(t *testing.T, dir string)
			want   string
		}{
			{"MaxPooling", func(t *testing.T, dir string) {
				if err := os.Mkdir(filepath.Join(dir, "1_Pooling"), 0o755); err != nil {
					t.Fatal(err)
				}
				hfWriteFile(t, filepath.Join(dir, "1_Pooling", "config.json"), `{"pooling_mode_max_tokens": true}`)
			}, "1_Pooling/config.json: nlu pools by the mean of the tokens or by the [CLS] token alone"},
			{"Dense", func(t *testing.T, dir string) {
				hfWriteFile(t, filepath.Join(dir, "modules.json"), `[{"path":"","type":"sentence_transformers.models.Transformer"},`+
					`{"path":"1_Pooling","type":"sentence_transformers.models.Pooling"},{"path":"2_Dense","type":"sentence_transformers.models.Dense"}]`)
			}, "modules.json: the model has a Dense module (2_Dense)"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				dir := hfCopy(t, m.dir)
				tt.mutate(t, dir)
				e, err := nlu.LoadEncoder(dir)
				if err == nil {
					e.Close()
					t.Fatalf("LoadEncoder succeeded, want an error mentioning %q", tt.want)
				}
				if kefu.CodeOf(err) != kefu.Invalid || !strings.Contains(kefu.MessageOf(err), tt.want) {
					t.Errorf("LoadEncoder error %q (%s), want kefu.Invalid mentioning %q", err, kefu.CodeOf(err), tt.want)
				}
			})
		}
	})
}

// benchSentences are FAQ-like phrasings, as a knowledge import embeds them.
var benchSentences = func() []string {
	base := []string{
		"下单后多久发货，几天能到？", "运费怎么算，满多少包邮？", "怎么退货，支持七天无理由退货吗？", "退款多久到账？",
		"尺码不合适可以换货吗？", "支持哪些付款方式？", "付款失败怎么办", "怎么开发票", "优惠券怎么用",
		"收货地址写错了能改吗", "订单还没发货能取消吗", "我的快递到哪了", "人工客服的工作时间是什么时候？",
		"How long does shipping take after I order?", "How much is shipping and when is it free?",
		"How do I return an item?", "How long does a refund take?", "Can I exchange an item for another size?",
		"Which payment methods do you accept?", "my payment keeps failing", "can i get an invoice for my company",
		"my discount code isnt applying", "i typed the wrong street, how to fix", "where is my package right now",
	}
	out := make([]string, 0, 256)
	for i := 0; len(out) < 256; i++ {
		out = append(out, fmt.Sprintf("%s %d", base[i%len(base)], i))
	}
	return out
}()

// BenchmarkEncoderEmbed embeds 256 FAQ phrasings an op, as an import does, and reports
// sentences a second.
func BenchmarkEncoderEmbed(b *testing.B) {
	e := mustEncoder(b)
	n := 0
	for b.Loop() {
		if _, err := e.Embed(b.Context(), benchSentences); err != nil {
			b.Fatal(err)
		}
		n += len(benchSentences)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "sentences/s")
}
