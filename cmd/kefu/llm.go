package main

import (
	"fmt"
	"net/url"

	"github.com/kefu-dev/kefu/dialog"
	"github.com/kefu-dev/kefu/retrieval"
)

// newGenerator is the LLM that words knowledge answers, or nil when cfg names none
// (-llm-url empty). The key comes from the environment only (KEFU_LLM_API_KEY).
func newGenerator(cfg Config) (dialog.Generator, string, error) {
	if cfg.LLMURL == "" {
		if cfg.LLMModel != "" {
			return nil, "", fmt.Errorf("-llm-model %q needs -llm-url (KEFU_LLM_URL): the OpenAI-compatible endpoint that serves it", cfg.LLMModel)
		}
		return nil, "", nil
	}
	u, err := url.Parse(cfg.LLMURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, "", fmt.Errorf("-llm-url %q is not an http(s) URL", cfg.LLMURL)
	}
	if cfg.LLMModel == "" {
		return nil, "", fmt.Errorf("-llm-url needs -llm-model (KEFU_LLM_MODEL)")
	}
	g, err := retrieval.NewGenerator(retrieval.GeneratorConfig{BaseURL: cfg.LLMURL, APIKey: cfg.LLMAPIKey, Model: cfg.LLMModel,
		MaxTokens: cfg.LLMMaxTokens, Timeout: cfg.LLMTimeout})
	if err != nil {
		return nil, "", err
	}
	u.User = nil // what may be logged of it
	return g, u.String(), nil
}
