package nlu

import (
	"context"
	"path/filepath"
	"strings"

	"github.com/kefu-dev/kefu"
)

// Encoder is an ONNX sentence encoder: it turns texts into L2-normalised vectors, for the
// knowledge base's dense search (it is a retrieval.Embedder). It is safe for concurrent use.
type Encoder struct {
	m *onnxModel
}

// LoadEncoder opens a sentence encoder folder. It reads two layouts, as Load does:
//
//   - Kefu's own (model.json, vocab.txt, model.onnx with an embedding output), written by
//     training/train_encoder.py; an intent model's folder also loads, its embedding output
//     being what the encoder gives;
//   - a Hugging Face BERT export (config.json, vocab.txt, model.onnx, optional
//     tokenizer_config.json and kefu.json, as Load describes), such as a sentence-transformers
//     model exported with optimum. The embedding is the first output of sentence_embedding
//     (normalised here), last_hidden_state or token_embeddings (mean over the attention mask,
//     or the [CLS] token's state when 1_Pooling/config.json says pooling_mode_cls_token), and
//     pooler_output. sentence_bert_config.json's max_seq_length caps the tokens a text. A
//     pooling nlu cannot compute (max, weighted mean…) or a Dense module after the pooling
//     fails with kefu.Invalid unless the export has a sentence_embedding output.
//
// InitRuntime must have been called. LoadEncoder runs the model once, so that a model that
// does not fit its files fails here. Every error names the file at fault; a missing file is
// kefu.NotFound, a file nlu cannot use kefu.Invalid.
func LoadEncoder(dir string) (*Encoder, error) {
	var (
		m   *onnxModel
		err error
	)
	switch {
	case isFile(filepath.Join(dir, "model.json")):
		m, err = loadKefuEncoder(dir)
	case isFile(filepath.Join(dir, "config.json")):
		m, err = loadHFEncoder(dir)
	default:
		err = folderError(dir)
	}
	if err != nil {
		return nil, err
	}
	m.startBatching()
	return &Encoder{m: m}, nil
}

// loadKefuEncoder opens a folder written by training/.
func loadKefuEncoder(dir string) (*onnxModel, error) {
	metaPath := filepath.Join(dir, "model.json")
	var meta Meta
	if err := readJSON(metaPath, &meta); err != nil {
		return nil, err
	}
	if meta.MaxLen <= 0 {
		meta.MaxLen = 64
	}
	tok, err := loadVocab(filepath.Join(dir, "vocab.txt"), meta.Lowercase == nil || *meta.Lowercase, meta.NFKC == nil || *meta.NFKC)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "model.onnx")
	m, err := openModel(path, meta, tok, nil, "", metaPath, false)
	if err != nil {
		return nil, err
	}
	if m.pooling != poolAsIs {
		m.session.Destroy()
		return nil, loadError(kefu.Invalid, nil, "%s: a model trained by training/ has an embedding output", path)
	}
	return m, nil
}

// stPooling is what nlu reads of a sentence-transformers Pooling module's config.json.
type stPooling struct {
	CLS          bool `json:"pooling_mode_cls_token"`
	Mean         bool `json:"pooling_mode_mean_tokens"`
	Max          bool `json:"pooling_mode_max_tokens"`
	MeanSqrtLen  bool `json:"pooling_mode_mean_sqrt_len_tokens"`
	WeightedMean bool `json:"pooling_mode_weightedmean_tokens"`
	LastToken    bool `json:"pooling_mode_lasttoken"`
}

// stModule is one line of a sentence-transformers modules.json.
type stModule struct {
	Path string `json:"path"`
	Type string `json:"type"`
}

// loadHFEncoder opens a Hugging Face export as an encoder, with the sentence-transformers
// files LoadEncoder describes.
func loadHFEncoder(dir string) (*onnxModel, error) {
	f, err := readHF(dir)
	if err != nil {
		return nil, err
	}
	stPath := filepath.Join(dir, "sentence_bert_config.json")
	if isFile(stPath) {
		var st struct {
			MaxSeqLength int `json:"max_seq_length"`
		}
		if err := readJSON(stPath, &st); err != nil {
			return nil, err
		}
		if st.MaxSeqLength > 0 {
			f.meta.MaxLen = max(2, min(f.meta.MaxLen, st.MaxSeqLength))
		}
	}
	// The pooling module, and whatever comes after it (a Dense layer nlu cannot apply).
	poolPath, dense := filepath.Join(dir, "1_Pooling", "config.json"), ""
	modsPath := filepath.Join(dir, "modules.json")
	if isFile(modsPath) {
		var mods []stModule
		if err := readJSON(modsPath, &mods); err != nil {
			return nil, err
		}
		for _, m := range mods {
			switch {
			case strings.HasSuffix(m.Type, ".Pooling"):
				poolPath = filepath.Join(dir, m.Path, "config.json")
			case strings.HasSuffix(m.Type, ".Dense"):
				dense = m.Path
			}
		}
	}
	path := filepath.Join(dir, "model.onnx")
	m, err := openModel(path, f.meta, f.tok, nil, "", f.cfgPath, false)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*onnxModel, error) {
		m.session.Destroy()
		return nil, err
	}
	if m.embedAs == "sentence_embedding" {
		return m, nil // pooled (and projected) in the graph
	}
	// nlu pools the token states itself: the model's own pooling must be one it can compute.
	if dense != "" {
		return fail(loadError(kefu.Invalid, nil, "%s: the model has a Dense module (%s) after its pooling, which nlu cannot apply: export it with a sentence_embedding output", modsPath, dense))
	}
	if isFile(poolPath) {
		var p stPooling
		if err := readJSON(poolPath, &p); err != nil {
			return fail(err)
		}
		other := p.Max || p.MeanSqrtLen || p.WeightedMean || p.LastToken
		switch {
		case m.pooling != poolMean:
			return fail(loadError(kefu.Invalid, nil, "%s: the model pools its token states, but model.onnx gives none (last_hidden_state or token_embeddings), only %s", poolPath, m.embedAs))
		case p.Mean && !p.CLS && !other:
		case p.CLS && !p.Mean && !other:
			m.pooling = poolCLS
		default:
			return fail(loadError(kefu.Invalid, nil, "%s: nlu pools by the mean of the tokens or by the [CLS] token alone, not this way (%+v): export the model with a sentence_embedding output", poolPath, p))
		}
	}
	return m, nil
}

// Embed returns the L2-normalised embedding of each text, in runs of up to 32 texts, as many
// at a time as there are cores. A single text (a customer's question) joins a micro-batch with
// the other questions being asked at the same moment.
func (e *Encoder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	if len(texts) == 1 {
		rep, err := e.m.one(ctx, "nlu.Embed", texts[0])
		if err != nil {
			return nil, err
		}
		return [][]float32{rep.emb}, nil
	}
	return e.m.embedTexts(ctx, texts)
}

// EmbedderID names the embedding space: vectors from different ids do not mix.
func (e *Encoder) EmbedderID() string { return "onnx-encoder:" + e.m.meta.Version }

// Dim is the length of the vectors.
func (e *Encoder) Dim() int { return e.m.dim }

// Meta describes the loaded model.
func (e *Encoder) Meta() Meta { return e.m.meta }

// Tokenizer is the model's tokenizer.
func (e *Encoder) Tokenizer() *Tokenizer { return e.m.tok }

// Close releases the ONNX session. Calls after the first do nothing.
func (e *Encoder) Close() error { return e.m.close() }
