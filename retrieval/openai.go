package retrieval

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/kefu-dev/kefu"
)

// DefaultOpenAIURL is the OpenAI API. Any server that speaks the same API (vLLM, Ollama,
// LocalAI, a provider's compatible endpoint) works by its own base URL, ending in /v1.
const DefaultOpenAIURL = "https://api.openai.com/v1"

// maxEmbedBatch is the most inputs sent in one embeddings request.
const maxEmbedBatch = 256

// OpenAIConfig is an OpenAI-compatible endpoint and the model to use there.
type OpenAIConfig struct {
	BaseURL string // DefaultOpenAIURL when empty
	APIKey  string // sent as a bearer token; never in errors or logs
	Model   string
	// Dimensions asks an embedding model for vectors of this size (text-embedding-3 and
	// later); 0 takes the model's own.
	Dimensions int
	// BatchSize is the number of texts per embeddings request (default and at most 256).
	BatchSize int
	// Retries is how many times a request answered 429 or 5xx is tried again (default 3),
	// after Backoff, then twice as long each time (default 500ms).
	Retries int
	Backoff time.Duration
	// Timeout bounds one request (default 60s).
	Timeout time.Duration
	// HTTPClient is the client to use (default: a plain http.Client).
	HTTPClient *http.Client
}

func (c *OpenAIConfig) defaults() {
	if c.BaseURL == "" {
		c.BaseURL = DefaultOpenAIURL
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.BatchSize <= 0 || c.BatchSize > maxEmbedBatch {
		c.BatchSize = maxEmbedBatch
	}
	if c.Retries < 0 {
		c.Retries = 0
	} else if c.Retries == 0 {
		c.Retries = 3
	}
	if c.Backoff <= 0 {
		c.Backoff = 500 * time.Millisecond
	}
	if c.Timeout <= 0 {
		c.Timeout = 60 * time.Second
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
}

func (c OpenAIConfig) client() *openai.Client {
	oc := openai.DefaultConfig(c.APIKey)
	oc.BaseURL = c.BaseURL
	oc.HTTPClient = c.HTTPClient
	return openai.NewClientWithConfig(oc)
}

// OpenAIEmbedder embeds texts with an OpenAI-compatible embeddings endpoint.
type OpenAIEmbedder struct {
	cfg    OpenAIConfig
	client *openai.Client
	dim    atomic.Int64 // the size of the vectors seen, when Dimensions is not set
}

var _ Embedder = (*OpenAIEmbedder)(nil)

// NewOpenAIEmbedder returns an embedder for cfg. It does not call the endpoint: without
// cfg.Dimensions, the vector size is learnt from the first answer (see Dim).
func NewOpenAIEmbedder(cfg OpenAIConfig) (*OpenAIEmbedder, error) {
	if cfg.Model == "" {
		return nil, kefu.Errorf("retrieval.NewOpenAIEmbedder", kefu.Invalid, "an embedding model is required")
	}
	if cfg.Dimensions < 0 {
		return nil, kefu.Errorf("retrieval.NewOpenAIEmbedder", kefu.Invalid, "dimensions must not be negative")
	}
	cfg.defaults()
	return &OpenAIEmbedder{cfg: cfg, client: cfg.client()}, nil
}

// EmbedderID is "openai:" and the model, and ":" and the dimensions when they are set.
func (e *OpenAIEmbedder) EmbedderID() string {
	id := "openai:" + e.cfg.Model
	if e.cfg.Dimensions > 0 {
		id += fmt.Sprintf(":%d", e.cfg.Dimensions)
	}
	return id
}

// Dim is the size of the vectors: the configured dimensions, else the size of the last
// vectors the endpoint returned, else 0 (unknown until the first call). A store sizes its
// vector index by it when it is created, so call Embed once before NewStore when the
// dimensions are not configured.
func (e *OpenAIEmbedder) Dim() int {
	if e.cfg.Dimensions > 0 {
		return e.cfg.Dimensions
	}
	return int(e.dim.Load())
}

// Embed returns one vector per text, in order, BatchSize texts a request.
func (e *OpenAIEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	const op = "retrieval.OpenAIEmbedder.Embed"
	out := make([][]float32, 0, len(texts))
	for i := 0; i < len(texts); i += e.cfg.BatchSize {
		batch := texts[i:min(i+e.cfg.BatchSize, len(texts))]
		var res openai.EmbeddingResponse
		err := retry(ctx, e.cfg, func(ctx context.Context) error {
			var err error
			res, err = e.client.CreateEmbeddings(ctx, openai.EmbeddingRequestStrings{
				Input: batch, Model: openai.EmbeddingModel(e.cfg.Model), Dimensions: e.cfg.Dimensions})
			return err
		})
		if err != nil {
			return nil, endpointError(op, "embeddings", err, e.cfg.APIKey)
		}
		vecs := make([][]float32, len(batch))
		for _, d := range res.Data {
			if d.Index < 0 || d.Index >= len(batch) || vecs[d.Index] != nil {
				return nil, kefu.Errorf(op, kefu.Internal, "the embeddings endpoint answered with a bad index %d for %d texts", d.Index, len(batch))
			}
			vecs[d.Index] = d.Embedding
		}
		for j, v := range vecs {
			want := e.Dim()
			switch {
			case len(v) == 0:
				return nil, kefu.Errorf(op, kefu.Internal, "the embeddings endpoint returned no vector for text %d of %d", i+j+1, len(texts))
			case want == 0:
				e.dim.Store(int64(len(v)))
			case len(v) != want:
				return nil, kefu.Errorf(op, kefu.Internal, "the embeddings endpoint returned a vector of %d dimensions, want %d", len(v), want)
			}
		}
		out = append(out, vecs...)
	}
	return out, nil
}

// retry runs call, again after a backoff while it fails with 429 or a 5xx status, at most
// cfg.Retries more times. Each attempt has cfg.Timeout.
func retry(ctx context.Context, cfg OpenAIConfig, call func(context.Context) error) error {
	wait := cfg.Backoff
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		err := call(actx)
		cancel()
		if err == nil || attempt >= cfg.Retries || !retryable(err) || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		wait *= 2
	}
}

// statusOf is the HTTP status of a failed call, or 0 when it never got an answer.
func statusOf(err error) int {
	var apiErr *openai.APIError
	if errors.As(err, &apiErr) {
		return apiErr.HTTPStatusCode
	}
	var reqErr *openai.RequestError
	if errors.As(err, &reqErr) {
		return reqErr.HTTPStatusCode
	}
	return 0
}

func retryable(err error) bool {
	s := statusOf(err)
	return s == http.StatusTooManyRequests || s >= 500
}

// endpointError describes a failed call to an endpoint by its status and the endpoint's
// message, with the API key (and anything that starts like it) cut out: some servers repeat
// the key they were given in their error.
func endpointError(op, what string, err error, key string) error {
	for _, c := range []error{context.DeadlineExceeded, context.Canceled} {
		if errors.Is(err, c) {
			return kefu.E(op, kefu.Unavailable, fmt.Errorf("the %s endpoint did not answer: %w", what, c))
		}
	}
	code := kefu.Unavailable
	status := statusOf(err)
	var detail string
	var apiErr *openai.APIError
	var reqErr *openai.RequestError
	switch {
	case errors.As(err, &apiErr):
		detail = apiErr.Message
	case errors.As(err, &reqErr):
		detail = string(reqErr.Body)
		if reqErr.Err != nil && detail == "" {
			detail = reqErr.Err.Error()
		}
	default:
		detail = err.Error()
	}
	if status >= 400 && status < 500 && status != http.StatusTooManyRequests {
		code = kefu.Internal // a bad key, model or request: configuration, not load
	}
	detail = redact(detail, key)
	if len(detail) > 300 {
		detail = detail[:300] + "…"
	}
	if status > 0 {
		return kefu.E(op, code, fmt.Errorf("the %s endpoint answered %d: %s", what, status, detail))
	}
	return kefu.E(op, code, fmt.Errorf("the %s endpoint failed: %s", what, detail))
}

// redact removes key from s, and any word that shares the key's first 8 characters (a
// server's "sk-abcd1234****wxyz").
func redact(s, key string) string {
	if key == "" {
		return s
	}
	s = strings.ReplaceAll(s, key, "[redacted]")
	if len(key) < 8 {
		return s
	}
	words := strings.Fields(s)
	changed := false
	for i, w := range words {
		if strings.Contains(w, key[:8]) {
			words[i], changed = "[redacted]", true
		}
	}
	if changed {
		return strings.Join(words, " ")
	}
	return s
}
