package nlu

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"

	ort "github.com/yalue/onnxruntime_go"
)

// OutOfScope is the intent of a message that fits no intent.
const OutOfScope = "out_of_scope"

// Meta is a model's model.json, written by training/.
type Meta struct {
	Version     string  `json:"version"`
	Created     string  `json:"created"`
	DataSHA256  string  `json:"data_sha256"`
	MaxLen      int     `json:"max_len"`
	Hidden      int     `json:"hidden"`
	Temperature float64 `json:"temperature"`
	Threshold   float64 `json:"threshold"`
	OutOfScope  string  `json:"out_of_scope"`
	Lowercase   *bool   `json:"lowercase,omitempty"` // default true
	NFKC        *bool   `json:"nfkc,omitempty"`      // default true
}

// Scored is an intent and its calibrated probability.
type Scored struct {
	Intent     string  `json:"intent"`
	Confidence float64 `json:"confidence"`
}

// Result is what nlu understood of one message.
type Result struct {
	Intent       string   `json:"intent"`     // OutOfScope when nothing fits
	Confidence   float64  `json:"confidence"` // calibrated probability of the top intent
	Ranking      []Scored `json:"ranking"`    // the top intents, best first
	OutOfScope   bool     `json:"out_of_scope"`
	Language     string   `json:"language"`
	ModelVersion string   `json:"model_version"`
}

// Classifier is an ONNX intent model and sentence encoder. It is safe for concurrent use.
type Classifier struct {
	meta    Meta
	tok     *Tokenizer
	labels  []string
	session *ort.DynamicAdvancedSession
	dim     int
	slots   chan struct{} // bounds concurrent runs to the number of cores
}

// Load opens a model folder written by training/: model.onnx, vocab.txt, labels.json,
// model.json. InitRuntime must have been called.
func Load(dir string) (*Classifier, error) {
	var meta Meta
	if err := readJSON(filepath.Join(dir, "model.json"), &meta); err != nil {
		return nil, err
	}
	if meta.MaxLen <= 0 {
		meta.MaxLen = 64
	}
	if meta.Temperature <= 0 {
		meta.Temperature = 1
	}
	var labels []string
	if err := readJSON(filepath.Join(dir, "labels.json"), &labels); err != nil {
		return nil, err
	}
	tok, err := LoadVocab(filepath.Join(dir, "vocab.txt"), meta.Lowercase == nil || *meta.Lowercase, meta.NFKC == nil || *meta.NFKC)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "model.onnx")
	_, outs, err := ort.GetInputOutputInfo(path)
	if err != nil {
		return nil, fmt.Errorf("nlu: %s: %w", path, err)
	}
	c := &Classifier{meta: meta, tok: tok, labels: labels, slots: make(chan struct{}, runtime.NumCPU())}
	for _, o := range outs {
		switch o.Name {
		case "logits":
			if d := o.Dimensions; len(d) != 2 || d[1] != int64(len(labels)) {
				return nil, fmt.Errorf("nlu: %s: logits %v do not match %d labels", path, d, len(labels))
			}
		case "embedding":
			if len(o.Dimensions) == 2 {
				c.dim = int(o.Dimensions[1])
			}
		}
	}
	if c.dim <= 0 {
		return nil, fmt.Errorf("nlu: %s has no embedding output", path)
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("nlu: %w", err)
	}
	defer opts.Destroy()
	_ = opts.SetIntraOpNumThreads(1) // parallelism comes from concurrent runs
	_ = opts.SetInterOpNumThreads(1)
	c.session, err = ort.NewDynamicAdvancedSession(path, []string{"input_ids", "attention_mask"}, []string{"logits", "embedding"}, opts)
	if err != nil {
		return nil, fmt.Errorf("nlu: %s: %w", path, err)
	}
	return c, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("nlu: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("nlu: %s: %w", path, err)
	}
	return nil
}

// Close releases the ONNX session.
func (c *Classifier) Close() error { return c.session.Destroy() }

// Meta describes the loaded model.
func (c *Classifier) Meta() Meta { return c.meta }

// Labels are the intents the model knows.
func (c *Classifier) Labels() []string { return c.labels }

// Dim is the length of the sentence embedding.
func (c *Classifier) Dim() int { return c.dim }

// Tokenizer is the model's tokenizer.
func (c *Classifier) Tokenizer() *Tokenizer { return c.tok }

// Understand ranks the intents of text, decides whether it is out of scope and detects its
// language.
func (c *Classifier) Understand(ctx context.Context, text string) (Result, error) {
	logits, _, err := c.run(ctx, []string{text})
	if err != nil {
		return Result{}, err
	}
	probs := softmax(logits[0], c.meta.Temperature)
	order := make([]int, len(probs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return probs[order[a]] > probs[order[b]] })
	res := Result{Language: DetectLanguage(text), ModelVersion: c.meta.Version}
	for _, i := range order[:min(5, len(order))] {
		res.Ranking = append(res.Ranking, Scored{Intent: c.labels[i], Confidence: probs[i]})
	}
	res.Intent, res.Confidence = res.Ranking[0].Intent, res.Ranking[0].Confidence
	if res.Intent == OutOfScope || res.Confidence < c.meta.Threshold {
		res.OutOfScope = true
		res.Intent = OutOfScope
	}
	return res, nil
}

// Embed returns the L2-normalised sentence embedding of each text.
func (c *Classifier) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	var out [][]float32
	for i := 0; i < len(texts); i += 32 {
		_, emb, err := c.run(ctx, texts[i:min(i+32, len(texts))])
		if err != nil {
			return nil, err
		}
		out = append(out, emb...)
	}
	return out, nil
}

// Dimensions is the embedding size (retrieval.Embedder).
func (c *Classifier) Dimensions() int { return c.dim }

// EmbedderID names the embedding space: vectors from different ids do not mix.
func (c *Classifier) EmbedderID() string { return "onnx:" + c.meta.Version }

func (c *Classifier) run(ctx context.Context, texts []string) (logits [][]float32, emb [][]float32, err error) {
	select {
	case c.slots <- struct{}{}:
		defer func() { <-c.slots }()
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	seqs := make([][]int64, len(texts))
	width := 0
	for i, t := range texts {
		seqs[i] = c.tok.Encode(t, c.meta.MaxLen)
		width = max(width, len(seqs[i]))
	}
	n := len(texts)
	ids := make([]int64, n*width)
	mask := make([]int64, n*width)
	for i, s := range seqs {
		for j, id := range s {
			ids[i*width+j] = id
			mask[i*width+j] = 1
		}
	}
	shape := ort.NewShape(int64(n), int64(width))
	idsT, err := ort.NewTensor(shape, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("nlu: %w", err)
	}
	defer idsT.Destroy()
	maskT, err := ort.NewTensor(shape, mask)
	if err != nil {
		return nil, nil, fmt.Errorf("nlu: %w", err)
	}
	defer maskT.Destroy()
	logT, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(n), int64(len(c.labels))))
	if err != nil {
		return nil, nil, fmt.Errorf("nlu: %w", err)
	}
	defer logT.Destroy()
	embT, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(n), int64(c.dim)))
	if err != nil {
		return nil, nil, fmt.Errorf("nlu: %w", err)
	}
	defer embT.Destroy()
	if err := c.session.Run([]ort.Value{idsT, maskT}, []ort.Value{logT, embT}); err != nil {
		return nil, nil, fmt.Errorf("nlu: run: %w", err)
	}
	ld, ed := logT.GetData(), embT.GetData()
	logits, emb = make([][]float32, n), make([][]float32, n)
	for i := range n {
		logits[i] = append([]float32(nil), ld[i*len(c.labels):(i+1)*len(c.labels)]...)
		emb[i] = append([]float32(nil), ed[i*c.dim:(i+1)*c.dim]...)
	}
	return logits, emb, nil
}

func softmax(logits []float32, temperature float64) []float64 {
	out := make([]float64, len(logits))
	m := math.Inf(-1)
	for _, l := range logits {
		m = math.Max(m, float64(l)/temperature)
	}
	var sum float64
	for i, l := range logits {
		out[i] = math.Exp(float64(l)/temperature - m)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}
