package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/kefu-dev/kefu"
	"github.com/kefu-dev/kefu/nlu"
	"github.com/kefu-dev/kefu/retrieval"
)

// newEmbedder is the knowledge base's embedder as cfg.Embedder names it: "encoder" is the
// sentence encoder in cfg.EncoderDir (models/encoder, trained by training/train_encoder.py);
// "intent" is the intent model's own embedding, classifier; empty is the encoder when its
// folder exists, else the intent model; "openai" is an OpenAI-compatible
// embeddings endpoint (KEFU_EMBED_URL, else KEFU_LLM_URL; KEFU_EMBED_API_KEY, else
// KEFU_LLM_API_KEY; -embed-model). An endpoint without -embed-dims is asked once here for the
// size of its vectors, which also checks the URL, the key and the model before serving.
func newEmbedder(ctx context.Context, cfg Config, classifier *nlu.Classifier) (retrieval.Embedder, error) {
	kind := cfg.Embedder
	if kind == "" {
		kind = "intent"
		if dir, err := findDir(encoderDir(cfg)); err == nil {
			if st, err := os.Stat(dir); err == nil && st.IsDir() { // findDir takes an absolute path on trust
				kind = "encoder"
			}
		}
	}
	switch kind {
	case "encoder":
		return loadEncoder(cfg)
	case "intent":
		return classifier, nil
	case "openai":
		url, key := cfg.EmbedURL, cfg.EmbedAPIKey
		if url == "" {
			url = cfg.LLMURL
		}
		if key == "" {
			key = cfg.LLMAPIKey
		}
		if url == "" || cfg.EmbedModel == "" {
			return nil, fmt.Errorf("-embedder openai needs an endpoint (KEFU_EMBED_URL or KEFU_LLM_URL) and a model (-embed-model, KEFU_EMBED_MODEL)")
		}
		e, err := retrieval.NewOpenAIEmbedder(retrieval.OpenAIConfig{BaseURL: url, APIKey: key, Model: cfg.EmbedModel, Dimensions: cfg.EmbedDims})
		if err != nil {
			return nil, err
		}
		if e.Dim() == 0 {
			pctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if _, err := e.Embed(pctx, []string{"dimension probe"}); err != nil {
				return nil, fmt.Errorf("-embedder openai: %w", err)
			}
		}
		return e, nil
	}
	return nil, fmt.Errorf("unknown -embedder %q (want encoder, intent or openai)", cfg.Embedder)
}

// encoderDir is cfg.EncoderDir, models/encoder when unset.
func encoderDir(cfg Config) string {
	if cfg.EncoderDir == "" {
		return "models/encoder"
	}
	return cfg.EncoderDir
}

// loadEncoder loads the sentence encoder in cfg's encoder folder (the ONNX Runtime too).
func loadEncoder(cfg Config) (*nlu.Encoder, error) {
	ort := cfg.ORTLib
	if ort == "" {
		ort = nlu.FindRuntime()
	}
	if err := nlu.InitRuntime(ort); err != nil {
		return nil, err
	}
	const hint = "train one with training/train_encoder.py, or use -embedder intent"
	dir, err := findDir(encoderDir(cfg))
	if err != nil {
		return nil, fmt.Errorf("-embedder encoder: %w (%s)", err, hint)
	}
	e, err := nlu.LoadEncoder(dir)
	if kefu.CodeOf(err) == kefu.NotFound {
		return nil, fmt.Errorf("-embedder encoder: %w (%s)", err, hint)
	}
	return e, err
}

// closeEmbedder releases what newEmbedder opened for e: a model of its own, not classifier.
func closeEmbedder(e retrieval.Embedder, classifier *nlu.Classifier) {
	if c, ok := e.(io.Closer); ok && e != retrieval.Embedder(classifier) {
		_ = c.Close()
	}
}
