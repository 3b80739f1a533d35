package nlu_test

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kefu-dev/kefu"
	"github.com/kefu-dev/kefu/nlu"
)

// tinyVocab is the vocabulary of the tiny test models: BERT's special pieces, a few words, a
// continuation and some ideographs.
const tinyVocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\nwhere\nis\nmy\norder\nrefund\nplease\ncafe\n##s\n?\n!\n,\n退\n款\n订\n单\n你\n好\n"

// tinyLabels are the intents of the tiny classifiers, in id order.
var tinyLabels = []string{"greeting", "refund", "order_status"}

// tinyTexts are what the tests classify and embed: "orders" is order ##s, 我 and 要 are [UNK],
// and "" is [CLS] [SEP].
var tinyTexts = []string{"hello", "Where is my order?", "refund please!", "我要退款", "hello world, hello orders", ""}

const (
	tinyHidden = 16
	tinyMaxPos = 64 // also the max_len nlu must pick: min(512, 64, 128)
)

// tinyBERT is what hfWrite wrote: the folder and what the model computes for each of tinyTexts.
type tinyBERT struct {
	dir string
	ref []tinyRef
}

// tinyRef is make_bert_onnx.py's numpy forward pass for one text.
type tinyRef struct {
	Logits []float64 `json:"logits"` // absent without a classification head
	Mean   []float64 `json:"mean"`   // L2-normalised masked mean of last_hidden_state
	Pooler []float64 `json:"pooler"` // L2-normalised pooler_output
	CLS    []float64 `json:"cls"`    // L2-normalised last_hidden_state of [CLS]
}

// hfWrite writes a Hugging Face style BERT folder in a temporary directory: config.json with
// id2label from labels (none: an encoder without classification head), vocab.txt,
// tokenizer_config.json, and a randomly initialised model.onnx made by
// testdata/make_bert_onnx.py with the extra arguments args.
func hfWrite(t *testing.T, labels []string, args ...string) tinyBERT {
	t.Helper()
	hfRequirePython(t)
	dir := filepath.Join(t.TempDir(), "tiny-bert")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	vocab := strings.Split(strings.TrimSuffix(tinyVocab, "\n"), "\n")
	id2label := map[string]string{"0": "LABEL_0", "1": "LABEL_1"} // what transformers saves for an encoder
	if labels != nil {
		id2label = map[string]string{}
		for i, l := range labels {
			id2label[strconv.Itoa(i)] = l
		}
	}
	hfWriteJSON(t, filepath.Join(dir, "config.json"), map[string]any{
		"architectures":           []string{"BertForSequenceClassification"},
		"model_type":              "bert",
		"vocab_size":              len(vocab),
		"hidden_size":             tinyHidden,
		"max_position_embeddings": tinyMaxPos,
		"type_vocab_size":         2,
		"id2label":                id2label,
	})
	hfWriteJSON(t, filepath.Join(dir, "tokenizer_config.json"), map[string]any{
		"do_lower_case": true, "model_max_length": 512, "tokenizer_class": "BertTokenizer",
	})
	hfWriteFile(t, filepath.Join(dir, "vocab.txt"), tinyVocab)

	// The ids Load's tokenizer gives each text: lower case, no NFKC, as Hugging Face's BERT.
	tok, err := nlu.NewTokenizer(vocab, true, false)
	if err != nil {
		t.Fatal(err)
	}
	var seqs [][]int64
	for _, text := range tinyTexts {
		seqs = append(seqs, tok.Encode(text, tinyMaxPos))
	}
	ids, _ := json.Marshal(seqs)
	cmd := exec.CommandContext(t.Context(), "/usr/bin/python3", append([]string{
		"testdata/make_bert_onnx.py", filepath.Join(dir, "model.onnx"),
		"--vocab", strconv.Itoa(len(vocab)), "--hidden", strconv.Itoa(tinyHidden),
		"--max-pos", strconv.Itoa(tinyMaxPos), "--labels", strconv.Itoa(len(labels)),
		"--reference", string(ids),
	}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("make_bert_onnx.py: %v\n%s", err, stderr.Bytes())
	}
	m := tinyBERT{dir: dir}
	if err := json.Unmarshal(out, &m.ref); err != nil || len(m.ref) != len(tinyTexts) {
		t.Fatalf("make_bert_onnx.py printed %d references (%v), want %d", len(m.ref), err, len(tinyTexts))
	}
	return m
}

// hfRequirePython fails the test when the model builder cannot run.
func hfRequirePython(t *testing.T) {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "/usr/bin/python3", "-c", "import onnx, numpy").CombinedOutput()
	if err != nil {
		t.Fatalf("/usr/bin/python3 cannot import onnx and numpy, which build the test models: %v\n%s"+
			"(run the tests with scripts/test, or install python3-onnx and python3-numpy with scripts/setup; fail, never skip)", err, out)
	}
}

// hfLoad loads dir in the real ONNX Runtime.
func hfLoad(t *testing.T, dir string) *nlu.Classifier {
	t.Helper()
	if err := nlu.InitRuntime(nlu.FindRuntime()); err != nil {
		t.Fatalf("%v (run the tests with scripts/test; fail, never skip)", err)
	}
	c, err := nlu.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestLoadHF(t *testing.T) {
	t.Parallel()
	m := hfWrite(t, tinyLabels) // outputs logits, last_hidden_state and pooler_output

	t.Run("Meta", func(t *testing.T) {
		t.Parallel()
		c := hfLoad(t, m.dir)
		meta := c.Meta()
		if meta.Version != "hf:tiny-bert" || meta.MaxLen != tinyMaxPos || meta.Hidden != tinyHidden ||
			meta.Temperature != 1 || meta.Threshold != 0 || !*meta.Lowercase || *meta.NFKC {
			t.Errorf("Meta() = %+v, want version hf:tiny-bert, max_len %d, hidden %d, temperature 1, threshold 0, lowercase, no NFKC", meta, tinyMaxPos, tinyHidden)
		}
		if !slices.Equal(c.Labels(), tinyLabels) {
			t.Errorf("Labels() = %q, want %q", c.Labels(), tinyLabels)
		}
		if c.Dim() != tinyHidden || c.EmbedderID() != "onnx:hf:tiny-bert" {
			t.Errorf("Dim() = %d, EmbedderID() = %q; want %d, onnx:hf:tiny-bert", c.Dim(), c.EmbedderID(), tinyHidden)
		}
		// Hugging Face's BERT tokenizer lower-cases and strips accents but applies no NFKC.
		for in, want := range map[string][]string{"Hello CAFÉ": {"hello", "cafe"}, "ｈｅｌｌｏ": {"[UNK]"}, "orders": {"order", "##s"}} {
			if got := c.Tokenizer().Tokenize(in); !slices.Equal(got, want) {
				t.Errorf("Tokenize(%q) = %q, want %q", in, got, want)
			}
		}
	})

	t.Run("Understand", func(t *testing.T) {
		t.Parallel()
		c := hfLoad(t, m.dir)
		for i, text := range tinyTexts {
			res, err := c.Understand(t.Context(), text)
			if err != nil {
				t.Fatal(err)
			}
			hfCheckRanking(t, text, res, m.ref[i].Logits, 1)
			if res.OutOfScope || res.ModelVersion != "hf:tiny-bert" {
				t.Errorf("Understand(%q) = out of scope %t, version %q; want false, hf:tiny-bert", text, res.OutOfScope, res.ModelVersion)
			}
		}
	})

	t.Run("Embed", func(t *testing.T) {
		t.Parallel()
		c := hfLoad(t, m.dir)
		vecs, err := c.Embed(t.Context(), tinyTexts)
		if err != nil {
			t.Fatal(err)
		}
		if len(vecs) != len(tinyTexts) {
			t.Fatalf("Embed returned %d vectors for %d texts", len(vecs), len(tinyTexts))
		}
		for i, v := range vecs {
			// last_hidden_state wins over pooler_output: the masked mean is the embedding.
			hfCheckVector(t, tinyTexts[i], v, m.ref[i].Mean)
		}
	})

	t.Run("BatchMatchesSingle", func(t *testing.T) {
		t.Parallel()
		c := hfLoad(t, m.dir)
		// Texts of different lengths share a batch: padding must not change any vector.
		texts := append(slices.Clone(tinyTexts), strings.Repeat("where is my order ", 40))
		batch, err := c.Embed(t.Context(), texts)
		if err != nil {
			t.Fatal(err)
		}
		for i, text := range texts {
			one, err := c.Embed(t.Context(), []string{text})
			if err != nil {
				t.Fatal(err)
			}
			for j := range one[0] {
				if math.Abs(float64(one[0][j]-batch[i][j])) > 1e-5 {
					t.Fatalf("Embed(%q): batched and single vectors differ at %d: %f vs %f", text, j, batch[i][j], one[0][j])
				}
			}
		}
	})

	t.Run("LongTextIsCutAtMaxPositions", func(t *testing.T) {
		t.Parallel()
		c := hfLoad(t, m.dir)
		// 300 words: past the 64 position embeddings, which Load's max_len must respect.
		if _, err := c.Understand(t.Context(), strings.Repeat("hello ", 300)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("KefuJSON", func(t *testing.T) {
		t.Parallel()
		dir := hfCopy(t, m.dir)
		hfWriteFile(t, filepath.Join(dir, "kefu.json"), `{"version": "shop-1", "temperature": 2, "threshold": 0.99}`)
		c := hfLoad(t, dir)
		if meta := c.Meta(); meta.Version != "shop-1" || meta.Temperature != 2 || meta.Threshold != 0.99 {
			t.Errorf("Meta() = %+v, want kefu.json's version shop-1, temperature 2, threshold 0.99", meta)
		}
		res, err := c.Understand(t.Context(), tinyTexts[1])
		if err != nil {
			t.Fatal(err)
		}
		hfCheckRanking(t, tinyTexts[1], res, m.ref[1].Logits, 2)
		// No three-way guess of a random model reaches 0.99.
		if !res.OutOfScope || res.Intent != nlu.OutOfScope || res.ModelVersion != "shop-1" {
			t.Errorf("Understand = %s (out of scope %t, %.3f, version %q), want out_of_scope below threshold 0.99, version shop-1", res.Intent, res.OutOfScope, res.Confidence, res.ModelVersion)
		}
	})

	t.Run("CasedShortTokenizer", func(t *testing.T) {
		t.Parallel()
		dir := hfCopy(t, m.dir)
		hfWriteJSON(t, filepath.Join(dir, "tokenizer_config.json"), map[string]any{"do_lower_case": false, "model_max_length": 8})
		c := hfLoad(t, dir)
		if got := c.Tokenizer().Tokenize("Hello hello"); !slices.Equal(got, []string{"[UNK]", "hello"}) {
			t.Errorf("Tokenize(%q) = %q with do_lower_case false, want [[UNK] hello]", "Hello hello", got)
		}
		if c.Meta().MaxLen != 8 || *c.Meta().Lowercase {
			t.Errorf("Meta() = %+v, want max_len 8 (model_max_length) and no lower case", c.Meta())
		}
	})

	t.Run("Broken", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name   string
			mutate func(t *testing.T, dir string)
			code   kefu.Code
			want   []string // in the error's message, which names the file and the problem
		}{
			{"NoConfigNoModelJSON", func(t *testing.T, dir string) { hfRemove(t, dir, "config.json") },
				kefu.NotFound, []string{"neither model.json", "nor config.json"}},
			{"NoModelONNX", func(t *testing.T, dir string) { hfRemove(t, dir, "model.onnx") },
				kefu.NotFound, []string{"model.onnx is missing"}},
			{"NoVocab", func(t *testing.T, dir string) { hfRemove(t, dir, "vocab.txt") },
				kefu.NotFound, []string{"vocab.txt is missing"}},
			{"VocabSizeMismatch", func(t *testing.T, dir string) { hfEditConfig(t, dir, "vocab_size", 30) },
				kefu.Invalid, []string{"vocab.txt has 24 pieces", "config.json says the model's vocab_size is 30"}},
			{"VocabLargerThanEmbeddings", func(t *testing.T, dir string) {
				// Without vocab_size only a run shows the mismatch: Load makes one.
				hfEditConfig(t, dir, "vocab_size", nil)
				hfWriteFile(t, filepath.Join(dir, "vocab.txt"), tinyVocab+"extra\npieces\n")
			}, kefu.Invalid, []string{"model.onnx fails on the last piece of vocab.txt (id 25)", "embedding table"}},
			{"LogitsWidthMismatch", func(t *testing.T, dir string) {
				hfEditConfig(t, dir, "id2label", map[string]string{"0": "a", "1": "b", "2": "c", "3": "d"})
			}, kefu.Invalid, []string{"model.onnx: logits have 3 columns", "config.json (id2label) has 4 labels"}},
			{"HiddenSizeMismatch", func(t *testing.T, dir string) { hfEditConfig(t, dir, "hidden_size", 32) },
				kefu.Invalid, []string{"model.onnx: embeddings have 16 dimensions", "config.json says the hidden size is 32"}},
			{"LabelIDsNotDense", func(t *testing.T, dir string) {
				hfEditConfig(t, dir, "id2label", map[string]string{"0": "a", "1": "b", "5": "c"})
			}, kefu.Invalid, []string{"config.json", `label id "5" is not one of 0 to 2`}},
			{"ConfigNotJSON", func(t *testing.T, dir string) { hfWriteFile(t, filepath.Join(dir, "config.json"), "{") },
				kefu.Invalid, []string{"config.json is not valid"}},
			{"KefuJSONTypo", func(t *testing.T, dir string) { hfWriteFile(t, filepath.Join(dir, "kefu.json"), `{"threshhold": 0.5}`) },
				kefu.Invalid, []string{"kefu.json is not valid"}},
			{"KefuJSONBadTemperature", func(t *testing.T, dir string) { hfWriteFile(t, filepath.Join(dir, "kefu.json"), `{"temperature": 0}`) },
				kefu.Invalid, []string{"kefu.json: temperature is 0"}},
			{"AccentsKeptWhileLowerCasing", func(t *testing.T, dir string) {
				hfWriteJSON(t, filepath.Join(dir, "tokenizer_config.json"), map[string]any{"strip_accents": false})
			}, kefu.Invalid, []string{"tokenizer_config.json: strip_accents=false"}},
			{"VocabWithoutCLS", func(t *testing.T, dir string) {
				hfWriteFile(t, filepath.Join(dir, "vocab.txt"), strings.Replace(tinyVocab, "[CLS]", "[CLASS]", 1))
			}, kefu.Invalid, []string{"vocab.txt is not a usable BERT vocabulary"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				dir := hfCopy(t, m.dir)
				tt.mutate(t, dir)
				hfLoadError(t, dir, tt.code, tt.want...)
			})
		}
		t.Run("NoFolder", func(t *testing.T) {
			t.Parallel()
			hfLoadError(t, filepath.Join(t.TempDir(), "nope"), kefu.NotFound, "nope cannot be read")
		})
	})
}

func TestLoadHFEncoderOnly(t *testing.T) {
	t.Parallel()
	m := hfWrite(t, nil, "--outputs", "last_hidden_state")
	c := hfLoad(t, m.dir)
	if len(c.Labels()) != 0 || c.Dim() != tinyHidden {
		t.Errorf("Labels() = %q, Dim() = %d; want none and %d", c.Labels(), c.Dim(), tinyHidden)
	}
	vecs, err := c.Embed(t.Context(), tinyTexts)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vecs {
		hfCheckVector(t, tinyTexts[i], v, m.ref[i].Mean)
	}
	_, err = c.Understand(t.Context(), "hello")
	if kefu.CodeOf(err) != kefu.Invalid || !strings.Contains(kefu.MessageOf(err), "no classification head") {
		t.Fatalf("Understand on an encoder = %v, want kefu.Invalid saying the model has no classification head", err)
	}
}

// TestLoadHFPoolerWithoutTokenTypes loads an export like DistilBERT's (no token_type_ids)
// whose only embedding output is pooler_output.
func TestLoadHFPoolerWithoutTokenTypes(t *testing.T) {
	t.Parallel()
	m := hfWrite(t, tinyLabels, "--outputs", "logits,pooler_output", "--no-token-type-ids")
	c := hfLoad(t, m.dir)
	vecs, err := c.Embed(t.Context(), tinyTexts)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vecs {
		hfCheckVector(t, tinyTexts[i], v, m.ref[i].Pooler)
	}
	res, err := c.Understand(t.Context(), tinyTexts[2])
	if err != nil {
		t.Fatal(err)
	}
	hfCheckRanking(t, tinyTexts[2], res, m.ref[2].Logits, 1)
}

func TestLoadHFWithoutInputIDs(t *testing.T) {
	t.Parallel()
	m := hfWrite(t, tinyLabels, "--ids-name", "ids")
	hfLoadError(t, m.dir, kefu.Invalid, "model.onnx has no input_ids input (its inputs: ids, attention_mask, token_type_ids)")
}

// hfCheckRanking checks that res ranks every label by softmax(logits/temperature).
func hfCheckRanking(t *testing.T, text string, res nlu.Result, logits []float64, temperature float64) {
	t.Helper()
	if len(logits) != len(tinyLabels) {
		t.Fatalf("reference has %d logits, want %d", len(logits), len(tinyLabels))
	}
	want := map[string]float64{}
	var sum float64
	for i, l := range logits {
		want[tinyLabels[i]] = math.Exp(l / temperature)
		sum += want[tinyLabels[i]]
	}
	if len(res.Ranking) != len(tinyLabels) {
		t.Fatalf("Understand(%q) ranks %v, want all of %q", text, res.Ranking, tinyLabels)
	}
	var total float64
	for i, s := range res.Ranking {
		total += s.Confidence
		p, ok := want[s.Intent]
		if !ok || math.Abs(s.Confidence-p/sum) > 1e-4 {
			t.Errorf("Understand(%q): %s has %.5f, want %.5f", text, s.Intent, s.Confidence, p/sum)
		}
		if i > 0 && s.Confidence > res.Ranking[i-1].Confidence {
			t.Errorf("Understand(%q): ranking %v is not best first", text, res.Ranking)
		}
	}
	if math.Abs(total-1) > 1e-6 {
		t.Errorf("Understand(%q): probabilities sum to %f, want 1", text, total)
	}
	if !res.OutOfScope && (res.Intent != res.Ranking[0].Intent || res.Confidence != res.Ranking[0].Confidence) {
		t.Errorf("Understand(%q) = %s %.3f, want the top of %v", text, res.Intent, res.Confidence, res.Ranking)
	}
}

// hfCheckVector checks that v is a unit vector equal to want.
func hfCheckVector(t *testing.T, text string, v []float32, want []float64) {
	t.Helper()
	if len(v) != tinyHidden || len(want) != tinyHidden {
		t.Fatalf("Embed(%q) has %d dimensions, reference %d, want %d", text, len(v), len(want), tinyHidden)
	}
	var norm float64
	for j, x := range v {
		norm += float64(x) * float64(x)
		if math.Abs(float64(x)-want[j]) > 1e-4 {
			t.Fatalf("Embed(%q)[%d] = %f, want %f", text, j, x, want[j])
		}
	}
	if math.Abs(norm-1) > 1e-4 {
		t.Errorf("Embed(%q) has norm² %f, want 1", text, norm)
	}
}

func hfLoadError(t *testing.T, dir string, code kefu.Code, want ...string) {
	t.Helper()
	if err := nlu.InitRuntime(nlu.FindRuntime()); err != nil {
		t.Fatalf("%v (run the tests with scripts/test; fail, never skip)", err)
	}
	c, err := nlu.Load(dir)
	if err == nil {
		c.Close()
		t.Fatalf("Load(%s) succeeded, want a %s error mentioning %q", dir, code, want)
	}
	t.Log(err)
	msg := kefu.MessageOf(err)
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("Load error %q does not mention %q", err, w)
		}
	}
	if got := kefu.CodeOf(err); got != code {
		t.Errorf("Load error %q has code %s, want %s", err, got, code)
	}
}

func hfCopy(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// hfEditConfig sets key in dir's config.json; nil deletes it.
func hfEditConfig(t *testing.T, dir, key string, value any) {
	t.Helper()
	path := filepath.Join(dir, "config.json")
	var cfg map[string]any
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if value == nil {
		delete(cfg, key)
	} else {
		cfg[key] = value
	}
	hfWriteJSON(t, path, cfg)
}

func hfRemove(t *testing.T, dir, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

func hfWriteJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	hfWriteFile(t, path, string(b))
}

func hfWriteFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
