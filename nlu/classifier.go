package nlu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"
	ort "github.com/yalue/onnxruntime_go"

	"github.com/kefu-dev/kefu"
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
	// NgramBuckets is the number of hashed character n-gram ids the model's ngram_ids input
	// takes (0: the model has no such input).
	NgramBuckets int `json:"ngram_buckets,omitempty"`
	// SimilarityThreshold: a message whose intent_similarity (cosine to the nearest intent
	// centroid) is under it is out of scope. Chosen on validation data; 0 turns it off.
	SimilarityThreshold float64 `json:"similarity_threshold,omitempty"`
	// Kind is "encoder" for a sentence encoder (training/train_encoder.py), which LoadEncoder
	// opens; empty for an intent model.
	Kind string `json:"kind,omitempty"`
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
	*onnxModel

	recent *lru.Cache[string, []float32] // embeddings of recent messages, for the knowledge search that follows
}

// onnxModel is an ONNX Runtime session and the tokenizer that feeds it: what Classifier and
// Encoder share. It is safe for concurrent use.
type onnxModel struct {
	meta    Meta
	tok     *Tokenizer
	labels  []string // nil when the model has no classification head
	session *ort.DynamicAdvancedSession
	feeds   []feed // what each of the session's inputs gets, in order
	logits  int    // index of the logits output, -1 when there is none
	sim     int    // index of the intent_similarity output, -1 when there is none
	embed   int    // index of the output the sentence embedding comes from, -1 when none
	embedAs string // that output's name
	pooling pooling
	dim     int
	slots   chan struct{} // bounds concurrent runs to the number of cores

	// Micro-batching of single texts (batch.go).
	queue     chan oneRequest
	stop      chan struct{}
	workers   sync.WaitGroup
	closeOnce sync.Once
	ran       func(texts []string, emb [][]float32) // told each micro-batch's embeddings, if set
}

// feed is what nlu puts in one model input.
type feed int

const (
	feedIDs    feed = iota // input_ids: token ids, padded with [PAD]
	feedMask               // attention_mask: 1 for tokens, 0 for padding
	feedZeros              // token_type_ids: one segment
	feedNgrams             // ngram_ids: hashed character n-grams (Tokenizer.NGrams), padded with 0
)

// feedFor says what nlu puts in the model input called name, if it knows the name.
func feedFor(name string) (feed, bool) {
	switch name {
	case "input_ids":
		return feedIDs, true
	case "attention_mask":
		return feedMask, true
	case "token_type_ids":
		return feedZeros, true
	case "ngram_ids":
		return feedNgrams, true
	}
	return 0, false
}

// pooling is how an output becomes one L2-normalised vector per text.
type pooling int

const (
	poolNone pooling = iota
	poolAsIs         // embedding: Kefu's models normalise it themselves
	poolUnit         // pooler_output: normalised here
	poolMean         // last_hidden_state: mean over the attention mask, then normalised
	poolCLS          // last_hidden_state: the first token's ([CLS]) state, normalised
)

// embeddingOutputs are the outputs a sentence embedding may come from, in order of preference,
// and how each is pooled.
var embeddingOutputs = []struct {
	name string
	pool pooling
}{
	{"embedding", poolAsIs},          // Kefu's models, normalised in the graph
	{"sentence_embedding", poolUnit}, // a sentence-transformers export, pooled in the graph
	{"last_hidden_state", poolMean},  // a Hugging Face encoder: pooled here
	{"token_embeddings", poolMean},   // a sentence-transformers export's token states
	{"pooler_output", poolUnit},      // BERT's pooler, the last resort
}

// Load opens a model folder. It reads two layouts. A folder with model.json is Kefu's own,
// written by training/: model.json, labels.json, vocab.txt and model.onnx with the outputs
// logits and embedding. A folder with config.json is a Hugging Face BERT export:
//
//   - config.json: id2label (or label2id) names the logits columns in id order; vocab_size,
//     hidden_size and max_position_embeddings are checked against the other files;
//   - vocab.txt: the WordPiece vocabulary;
//   - tokenizer_config.json (optional): do_lower_case (default true) and model_max_length;
//     Hugging Face's BERT tokenizer applies no NFKC, so neither does nlu for these folders;
//   - kefu.json (optional): temperature (default 1), threshold (default 0) and version
//     (default "hf:" and the folder's name);
//   - model.onnx: int64 inputs input_ids, attention_mask and optionally token_type_ids (fed
//     zeros); float32 outputs logits for a classifier, and for embeddings the first of
//     sentence_embedding, last_hidden_state or token_embeddings (mean-pooled over the attention
//     mask) and pooler_output. An encoder without logits loads and embeds, and its Understand
//     fails with kefu.Invalid (LoadEncoder is the way to open a sentence encoder).
//
// Messages are cut at min(model_max_length, max_position_embeddings, 128) tokens.
//
// InitRuntime must have been called. Load runs the model once, so that a model that does not
// fit its files fails here rather than on a customer's message. Every error names the file at
// fault; a missing file is kefu.NotFound, a file nlu cannot use kefu.Invalid.
func Load(dir string) (*Classifier, error) {
	switch {
	case isFile(filepath.Join(dir, "model.json")):
		return loadKefu(dir)
	case isFile(filepath.Join(dir, "config.json")):
		return loadHF(dir)
	}
	return nil, folderError(dir)
}

// folderError says why dir, which has neither model.json nor config.json, is no model folder.
func folderError(dir string) error {
	if st, err := os.Stat(dir); err != nil {
		return loadError(kefu.NotFound, err, "model folder %s cannot be read", dir)
	} else if !st.IsDir() {
		return loadError(kefu.Invalid, nil, "model folder %s is not a folder", dir)
	}
	return loadError(kefu.NotFound, nil, "model folder %s has neither model.json (a model trained by training/) nor config.json (a Hugging Face export)", dir)
}

// loadKefu opens a folder written by training/.
func loadKefu(dir string) (*Classifier, error) {
	var meta Meta
	if err := readJSON(filepath.Join(dir, "model.json"), &meta); err != nil {
		return nil, err
	}
	if meta.Kind == "encoder" {
		return nil, loadError(kefu.Invalid, nil, "%s: %s is a sentence encoder (kind encoder), not an intent model: it embeds knowledge (kefu -embedder encoder -encoder-model %s, nlu.LoadEncoder)", filepath.Join(dir, "model.json"), dir, dir)
	}
	if meta.MaxLen <= 0 {
		meta.MaxLen = 64
	}
	if meta.Temperature <= 0 {
		meta.Temperature = 1
	}
	labelsPath := filepath.Join(dir, "labels.json")
	var labels []string
	if err := readJSON(labelsPath, &labels); err != nil {
		return nil, err
	}
	if len(labels) == 0 {
		return nil, loadError(kefu.Invalid, nil, "%s lists no labels", labelsPath)
	}
	tok, err := loadVocab(filepath.Join(dir, "vocab.txt"), meta.Lowercase == nil || *meta.Lowercase, meta.NFKC == nil || *meta.NFKC)
	if err != nil {
		return nil, err
	}
	c, err := open(filepath.Join(dir, "model.onnx"), meta, tok, labels, labelsPath, filepath.Join(dir, "model.json"))
	if err != nil {
		return nil, err
	}
	// training/ always exports both heads: a missing one means a broken export.
	if c.logits < 0 || c.pooling != poolAsIs {
		c.Close()
		return nil, loadError(kefu.Invalid, nil, "%s: a model trained by training/ has the outputs logits and embedding", filepath.Join(dir, "model.onnx"))
	}
	return c, nil
}

// open opens a classifier: openModel with its heads, and the micro-batching of Understand.
func open(path string, meta Meta, tok *Tokenizer, labels []string, labelsFrom, metaFrom string) (*Classifier, error) {
	m, err := openModel(path, meta, tok, labels, labelsFrom, metaFrom, true)
	if err != nil {
		return nil, err
	}
	recent, _ := lru.New[string, []float32](recentSize) // fails only for a size ≤ 0
	c := &Classifier{onnxModel: m, recent: recent}
	c.ran = func(texts []string, vecs [][]float32) {
		for i, t := range texts {
			recent.Add(t, vecs[i])
		}
	}
	c.startBatching()
	return c, nil
}

// openModel inspects model.onnx, matches its inputs and outputs to what nlu feeds and reads,
// opens the session and runs it once so that a model that does not fit its files fails here
// rather than on a customer's message. labelsFrom and metaFrom name the files labels and
// meta.Hidden come from, for errors. Without heads (an encoder) only the sentence embedding
// is read: logits and intent_similarity outputs are left alone.
func openModel(path string, meta Meta, tok *Tokenizer, labels []string, labelsFrom, metaFrom string, heads bool) (*onnxModel, error) {
	if err := requireFile(path, "export the model to ONNX into this folder (optimum-cli export onnx writes model.onnx)"); err != nil {
		return nil, err
	}
	ins, outs, err := ort.GetInputOutputInfo(path)
	if err != nil {
		return nil, loadError(kefu.Invalid, err, "%s cannot be read by ONNX Runtime", path)
	}
	c := &onnxModel{meta: meta, tok: tok, logits: -1, embed: -1, sim: -1, slots: make(chan struct{}, runtime.NumCPU())}

	var inNames, unknown []string
	seen := map[feed]bool{}
	for _, in := range ins {
		f, ok := feedFor(in.Name)
		if !ok {
			unknown = append(unknown, in.Name)
			continue
		}
		if in.DataType != ort.TensorElementDataTypeInt64 || len(in.Dimensions) != 2 {
			return nil, loadError(kefu.Invalid, nil, "%s: input %s is %s %v, want int64 [batch, sequence]", path, in.Name, in.DataType, in.Dimensions)
		}
		if f == feedNgrams && c.meta.NgramBuckets <= 0 {
			return nil, loadError(kefu.Invalid, nil, "%s has an ngram_ids input but its metadata gives no ngram_buckets", path)
		}
		inNames = append(inNames, in.Name)
		c.feeds = append(c.feeds, f)
		seen[f] = true
	}
	switch {
	case !seen[feedIDs]:
		return nil, loadError(kefu.Invalid, nil, "%s has no input_ids input (its inputs: %s)", path, names(ins))
	case !seen[feedMask]:
		return nil, loadError(kefu.Invalid, nil, "%s has no attention_mask input (its inputs: %s)", path, names(ins))
	case len(unknown) > 0:
		return nil, loadError(kefu.Invalid, nil, "%s: nlu fills input_ids, attention_mask and token_type_ids, not %s", path, strings.Join(unknown, ", "))
	}

	byName := map[string]ort.InputOutputInfo{}
	for _, o := range outs {
		byName[o.Name] = o
	}
	var outNames []string
	wantFloat := func(o ort.InputOutputInfo, rank int, shape string) error {
		if o.DataType != ort.TensorElementDataTypeFloat || len(o.Dimensions) != rank {
			return loadError(kefu.Invalid, nil, "%s: output %s is %s %v, want float32 %s", path, o.Name, o.DataType, o.Dimensions, shape)
		}
		return nil
	}
	if o, ok := byName["logits"]; ok && heads {
		if err := wantFloat(o, 2, "[batch, labels]"); err != nil {
			return nil, err
		}
		if len(labels) == 0 {
			return nil, loadError(kefu.Invalid, nil, "%s gives no labels for the logits of %s", labelsFrom, path)
		}
		if w := o.Dimensions[1]; w > 0 && w != int64(len(labels)) {
			return nil, loadError(kefu.Invalid, nil, "%s: logits have %d columns but %s has %d labels", path, w, labelsFrom, len(labels))
		}
		c.logits, c.labels = len(outNames), labels
		outNames = append(outNames, o.Name)
	}
	// The sentence embedding comes from the first of embeddingOutputs the model has.
	for _, e := range embeddingOutputs {
		o, ok := byName[e.name]
		if !ok {
			continue
		}
		rank, shape := 2, "[batch, hidden]"
		if e.pool == poolMean {
			rank, shape = 3, "[batch, sequence, hidden]"
		}
		if err := wantFloat(o, rank, shape); err != nil {
			return nil, err
		}
		c.embed, c.embedAs, c.pooling, c.dim = len(outNames), e.name, e.pool, int(o.Dimensions[rank-1]) // -1 when dynamic: the probe finds it
		outNames = append(outNames, o.Name)
		break
	}
	// Kefu's models may add the cosine of the embedding to the nearest intent centroid, which
	// Understand compares with meta.SimilarityThreshold to find out-of-scope messages.
	if o, ok := byName["intent_similarity"]; ok && c.logits >= 0 && heads {
		if err := wantFloat(o, 1, "[batch]"); err != nil {
			return nil, err
		}
		c.sim = len(outNames)
		outNames = append(outNames, o.Name)
	}
	if len(outNames) == 0 {
		var want []string
		if heads {
			want = append(want, "logits")
		}
		for _, e := range embeddingOutputs {
			want = append(want, e.name)
		}
		return nil, loadError(kefu.Invalid, nil, "%s has none of the outputs nlu reads: %s (its outputs: %s)", path, strings.Join(want, ", "), names(outs))
	}

	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, loadError(kefu.Internal, err, "ONNX Runtime session options")
	}
	defer opts.Destroy()
	_ = opts.SetIntraOpNumThreads(1) // parallelism comes from concurrent runs
	_ = opts.SetInterOpNumThreads(1)
	c.session, err = ort.NewDynamicAdvancedSession(path, inNames, outNames, opts)
	if err != nil {
		return nil, loadError(kefu.Invalid, err, "%s cannot be opened by ONNX Runtime", path)
	}
	if err := c.probe(path, labelsFrom, metaFrom); err != nil {
		c.session.Destroy()
		return nil, err
	}
	if c.meta.Hidden <= 0 {
		c.meta.Hidden = c.dim
	}
	return c, nil
}

// probe runs the model on [CLS] [SEP], letting ONNX Runtime allocate the outputs, and checks
// their shapes. Then it runs [CLS] <the last piece of vocab.txt> [SEP]: a vocabulary larger than
// the model's embedding table fails there.
func (c *onnxModel) probe(path, labelsFrom, metaFrom string) error {
	outs, err := c.runAllocated([]int64{c.tok.cls, c.tok.sep})
	defer destroy(outs)
	if err != nil {
		return loadError(kefu.Invalid, err, "%s fails on a test input", path)
	}
	shapeOf := func(i int) (ort.Shape, error) {
		t, ok := outs[i].(*ort.Tensor[float32])
		if !ok {
			return nil, loadError(kefu.Invalid, nil, "%s: output %d is not a float32 tensor", path, i)
		}
		return t.GetShape(), nil
	}
	if c.logits >= 0 {
		s, err := shapeOf(c.logits)
		if err != nil {
			return err
		}
		if len(s) != 2 || s[0] != 1 || s[1] != int64(len(c.labels)) {
			return loadError(kefu.Invalid, nil, "%s: logits for one text have shape %v, want [1 %d] for the %d labels of %s", path, s, len(c.labels), len(c.labels), labelsFrom)
		}
	}
	if c.embed >= 0 {
		s, err := shapeOf(c.embed)
		if err != nil {
			return err
		}
		prefix := ort.Shape{1} // [batch, hidden]
		if c.pooling == poolMean || c.pooling == poolCLS {
			prefix = ort.Shape{1, 2} // [batch, sequence, hidden]
		}
		if len(s) != len(prefix)+1 || !slices.Equal(s[:len(prefix)], prefix) || s[len(prefix)] <= 0 {
			return loadError(kefu.Invalid, nil, "%s: the embedding output for one text of 2 tokens has shape %v", path, s)
		}
		c.dim = int(s[len(prefix)])
		if h := c.meta.Hidden; h > 0 && h != c.dim {
			return loadError(kefu.Invalid, nil, "%s: embeddings have %d dimensions but %s says the hidden size is %d", path, c.dim, metaFrom, h)
		}
	}
	last := int64(c.tok.VocabSize() - 1)
	outs2, err := c.runAllocated([]int64{c.tok.cls, last, c.tok.sep})
	destroy(outs2)
	if err != nil {
		return loadError(kefu.Invalid, err, "%s fails on the last piece of vocab.txt (id %d): the vocabulary is larger than the model's embedding table", path, last)
	}
	return nil
}

// runAllocated runs the model on one sequence and lets ONNX Runtime allocate the outputs,
// which the caller destroys, also after an error.
func (c *onnxModel) runAllocated(seq []int64) ([]ort.Value, error) {
	var grams [][]int64
	if c.meta.NgramBuckets > 0 {
		grams = [][]int64{{int64(c.meta.NgramBuckets)}} // the largest id: checks the table's size
	}
	in, _, err := c.inputs([][]int64{seq}, grams)
	if err != nil {
		return nil, err
	}
	defer destroy(in)
	outs := make([]ort.Value, max(c.logits, c.embed, c.sim)+1)
	return outs, c.session.Run(in, outs)
}

// loadError is a start-up error: message says which file is at fault and how.
func loadError(code kefu.Code, err error, format string, args ...any) error {
	return &kefu.Error{Op: "nlu.Load", Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

// requireFile fails with kefu.NotFound and hint when path is not a file.
func requireFile(path, hint string) error {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return loadError(kefu.NotFound, nil, "%s is missing: %s", path, hint)
	case err != nil:
		return loadError(kefu.Invalid, err, "%s cannot be read", path)
	case st.IsDir():
		return loadError(kefu.Invalid, nil, "%s is a folder, not a file", path)
	}
	return nil
}

func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir()
}

// readFile reads a file of a model folder, with start-up errors.
func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, loadError(kefu.NotFound, nil, "%s is missing", path)
	}
	if err != nil {
		return nil, loadError(kefu.Invalid, err, "%s cannot be read", path)
	}
	return b, nil
}

func readJSON(path string, v any) error {
	b, err := readFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return loadError(kefu.Invalid, err, "%s is not valid", path)
	}
	return nil
}

// loadVocab is LoadVocab with start-up errors.
func loadVocab(path string, lowercase, nfkc bool) (*Tokenizer, error) {
	if err := requireFile(path, "nlu needs the model's BERT WordPiece vocabulary (one piece a line)"); err != nil {
		return nil, err
	}
	tok, err := LoadVocab(path, lowercase, nfkc)
	if err != nil {
		return nil, loadError(kefu.Invalid, err, "%s is not a usable BERT vocabulary", path)
	}
	return tok, nil
}

func names(infos []ort.InputOutputInfo) string {
	var s []string
	for _, i := range infos {
		s = append(s, i.Name)
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// Close stops the micro-batching workers and releases the ONNX session. Calls after the first
// do nothing.
func (c *Classifier) Close() error { return c.close() }

// Meta describes the loaded model.
func (c *Classifier) Meta() Meta { return c.meta }

// Labels are the intents the model knows; none when it has no classification head.
func (c *Classifier) Labels() []string { return c.labels }

// Dim is the length of the sentence embedding; 0 when the model gives none.
func (c *Classifier) Dim() int { return c.dim }

// Tokenizer is the model's tokenizer.
func (c *Classifier) Tokenizer() *Tokenizer { return c.tok }

// Understand ranks the intents of text, decides whether it is out of scope and detects its
// language. It fails with kefu.Invalid when the model has no classification head.
func (c *Classifier) Understand(ctx context.Context, text string) (Result, error) {
	if c.logits < 0 {
		return Result{}, kefu.Errorf("nlu.Understand", kefu.Invalid, "model %s has no classification head (no logits output): it can embed text but not classify intents", c.meta.Version)
	}
	rep, err := c.one(ctx, "nlu.Understand", text)
	if err != nil {
		return Result{}, err
	}
	probs := softmax(rep.logits, c.meta.Temperature)
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
	if res.Intent == OutOfScope || res.Confidence < c.meta.Threshold ||
		(rep.hasSim && float64(rep.sim) < c.meta.SimilarityThreshold) {
		res.OutOfScope = true
		res.Intent = OutOfScope
	}
	return res, nil
}

// Embed returns the L2-normalised sentence embedding of each text. It fails with kefu.Invalid
// when the model gives no embedding.
func (c *Classifier) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	if c.embed < 0 {
		return nil, kefu.Errorf("nlu.Embed", kefu.Invalid, "model %s has no sentence embedding output (embedding, last_hidden_state or pooler_output)", c.meta.Version)
	}
	if len(texts) == 1 { // a customer's message, most likely just classified
		if v, ok := c.recent.Get(texts[0]); ok {
			return [][]float32{v}, nil
		}
	}
	return c.embedTexts(ctx, texts)
}

// EmbedderID names the embedding space: vectors from different ids do not mix.
func (c *Classifier) EmbedderID() string { return "onnx:" + c.meta.Version }

// runOutput is what one run gives for each text.
type runOutput struct {
	logits [][]float32 // nil without a classification head
	emb    [][]float32 // nil without an embedding output
	sim    []float32   // nil without an intent_similarity output
}

// run runs the model once on texts (one batch).
func (c *onnxModel) run(ctx context.Context, texts []string) (out runOutput, err error) {
	select {
	case c.slots <- struct{}{}:
		defer func() { <-c.slots }()
	case <-ctx.Done():
		return out, ctx.Err()
	}
	seqs := make([][]int64, len(texts))
	for i, t := range texts {
		seqs[i] = c.tok.Encode(t, c.meta.MaxLen)
	}
	var grams [][]int64
	if c.meta.NgramBuckets > 0 {
		grams = make([][]int64, len(texts))
		for i, t := range texts {
			grams[i] = c.tok.NGrams(t, c.meta.NgramBuckets)
		}
	}
	in, width, err := c.inputs(seqs, grams)
	if err != nil {
		return out, fmt.Errorf("nlu: %w", err)
	}
	defer destroy(in)
	n := len(texts)
	outs := make([]ort.Value, max(c.logits, c.embed, c.sim)+1)
	defer destroy(outs)
	if c.logits >= 0 {
		if outs[c.logits], err = ort.NewEmptyTensor[float32](ort.NewShape(int64(n), int64(len(c.labels)))); err != nil {
			return out, fmt.Errorf("nlu: %w", err)
		}
	}
	if c.embed >= 0 {
		shape := ort.NewShape(int64(n), int64(c.dim))
		if c.pooling == poolMean || c.pooling == poolCLS {
			shape = ort.NewShape(int64(n), int64(width), int64(c.dim))
		}
		if outs[c.embed], err = ort.NewEmptyTensor[float32](shape); err != nil {
			return out, fmt.Errorf("nlu: %w", err)
		}
	}
	if c.sim >= 0 {
		if outs[c.sim], err = ort.NewEmptyTensor[float32](ort.NewShape(int64(n))); err != nil {
			return out, fmt.Errorf("nlu: %w", err)
		}
	}
	if err := c.session.Run(in, outs); err != nil {
		return out, fmt.Errorf("nlu: run: %w", err)
	}
	if c.logits >= 0 {
		ld := outs[c.logits].(*ort.Tensor[float32]).GetData()
		out.logits = make([][]float32, n)
		for i := range n {
			out.logits[i] = append([]float32(nil), ld[i*len(c.labels):(i+1)*len(c.labels)]...)
		}
	}
	if c.embed >= 0 {
		out.emb = c.pool(outs[c.embed].(*ort.Tensor[float32]).GetData(), seqs, width)
	}
	if c.sim >= 0 {
		out.sim = append([]float32(nil), outs[c.sim].(*ort.Tensor[float32]).GetData()...)
	}
	return out, nil
}

// inputs makes the model's input tensors for seqs, padded to the longest, and returns that
// length. The caller destroys the tensors.
func (c *onnxModel) inputs(seqs, grams [][]int64) (in []ort.Value, width int, err error) {
	for _, s := range seqs {
		width = max(width, len(s))
	}
	n := len(seqs)
	ids := make([]int64, n*width)
	mask := make([]int64, n*width)
	for i, s := range seqs {
		for j := range width {
			if j < len(s) {
				ids[i*width+j], mask[i*width+j] = s[j], 1
			} else {
				ids[i*width+j] = c.tok.pad
			}
		}
	}
	shape := ort.NewShape(int64(n), int64(width))
	for _, f := range c.feeds {
		data, sh := ids, shape
		switch f {
		case feedMask:
			data = mask
		case feedZeros:
			data = make([]int64, n*width)
		case feedNgrams:
			data, sh = padGrams(grams, n)
		}
		t, err := ort.NewTensor(sh, data)
		if err != nil {
			destroy(in)
			return nil, 0, err
		}
		in = append(in, t)
	}
	return in, width, nil
}

// padGrams lays out n-gram ids as an n × longest matrix padded with 0 (at least one column).
func padGrams(grams [][]int64, n int) ([]int64, ort.Shape) {
	width := 1
	for _, g := range grams {
		width = max(width, len(g))
	}
	data := make([]int64, n*width)
	for i, g := range grams {
		copy(data[i*width:], g)
	}
	return data, ort.NewShape(int64(n), int64(width))
}

// pool turns the embedding output into one unit vector per sequence.
func (c *onnxModel) pool(data []float32, seqs [][]int64, width int) [][]float32 {
	out := make([][]float32, len(seqs))
	for i, s := range seqs {
		switch c.pooling {
		case poolAsIs:
			out[i] = append([]float32(nil), data[i*c.dim:(i+1)*c.dim]...)
		case poolUnit:
			out[i] = unit(data[i*c.dim : (i+1)*c.dim])
		case poolMean:
			// The first len(s) positions are the tokens; the rest are padding, masked out.
			sum := make([]float32, c.dim)
			for j := range len(s) {
				row := data[(i*width+j)*c.dim : (i*width+j+1)*c.dim]
				for k, x := range row {
					sum[k] += x
				}
			}
			out[i] = unit(sum) // the sum points where the mean does
		case poolCLS:
			out[i] = unit(data[i*width*c.dim : (i*width+1)*c.dim])
		}
	}
	return out
}

// unit returns v scaled to length 1; a zero vector stays zero.
func unit(v []float32) []float32 {
	var norm float64
	for _, x := range v {
		norm += float64(x) * float64(x)
	}
	out := make([]float32, len(v))
	if norm == 0 {
		return out
	}
	scale := 1 / math.Sqrt(norm)
	for k, x := range v {
		out[k] = float32(float64(x) * scale)
	}
	return out
}

func destroy(vals []ort.Value) {
	for _, v := range vals {
		if v != nil {
			v.Destroy()
		}
	}
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
