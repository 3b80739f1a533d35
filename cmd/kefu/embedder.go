package main

import (
	"context"
	"fmt"
	"time"

	"github.com/kefu-dev/kefu/nlu"
	"github.com/kefu-dev/kefu/retrieval"
)

// newEmbedder is the knowledge base's embedder as cfg.Embedder names it: "intent" (or empty)
// is the intent model's sentence encoder, classifier; "openai" is an OpenAI-compatible
// embeddings endpoint (KEFU_EMBED_URL, else KEFU_LLM_URL; KEFU_EMBED_API_KEY, else
// KEFU_LLM_API_KEY; -embed-model). An endpoint without -embed-dims is asked once here for the
// size of its vectors, which also checks the URL, the key and the model before serving.
func newEmbedder(ctx context.Context, cfg Config, classifier *nlu.Classifier) (retrieval.Embedder, error) {
	switch cfg.Embedder {
	case "", "intent":
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
	return nil, fmt.Errorf("unknown -embedder %q (want intent or openai)", cfg.Embedder)
}
