package retrieval_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kefu-dev/kefu"
	"github.com/kefu-dev/kefu/internal/openaitest"
	"github.com/kefu-dev/kefu/retrieval"
)

const testKey = "sk-test-0123456789abcdef"

func TestOpenAIEmbedder(t *testing.T) {
	t.Parallel()

	t.Run("BatchesInOrder", func(t *testing.T) {
		t.Parallel()
		srv := openaitest.New(t, testKey)
		e, err := retrieval.NewOpenAIEmbedder(retrieval.OpenAIConfig{BaseURL: srv.BaseURL(), APIKey: testKey, Model: "embed-small"})
		if err != nil {
			t.Fatal(err)
		}
		if e.Dim() != 0 || e.EmbedderID() != "openai:embed-small" {
			t.Fatalf("before any call: Dim %d, id %q", e.Dim(), e.EmbedderID())
		}
		texts := make([]string, 600)
		for i := range texts {
			texts[i] = fmt.Sprintf("phrasing %d", i)
		}
		vecs, err := e.Embed(t.Context(), texts)
		if err != nil {
			t.Fatal(err)
		}
		var sizes []int
		for _, c := range srv.Embeds() {
			sizes = append(sizes, len(c.Input))
			if c.Model != "embed-small" || c.Dimensions != 0 {
				t.Errorf("request model %q dimensions %d", c.Model, c.Dimensions)
			}
		}
		if !slices.Equal(sizes, []int{256, 256, 88}) {
			t.Fatalf("batch sizes = %v, want [256 256 88]", sizes)
		}
		if len(vecs) != len(texts) {
			t.Fatalf("%d vectors for %d texts", len(vecs), len(texts))
		}
		for i, text := range texts {
			if !slices.Equal(vecs[i], openaitest.Vector(text, 8)) {
				t.Fatalf("vector %d is not the vector of %q", i, text)
			}
		}
		if e.Dim() != 8 {
			t.Errorf("Dim after a call = %d, want 8", e.Dim())
		}
	})

	t.Run("DimensionsAndBatchSize", func(t *testing.T) {
		t.Parallel()
		srv := openaitest.New(t, testKey)
		e, err := retrieval.NewOpenAIEmbedder(retrieval.OpenAIConfig{BaseURL: srv.BaseURL() + "/", APIKey: testKey, Model: "embed-3",
			Dimensions: 16, BatchSize: 2})
		if err != nil {
			t.Fatal(err)
		}
		if e.EmbedderID() != "openai:embed-3:16" || e.Dim() != 16 {
			t.Fatalf("id %q dim %d", e.EmbedderID(), e.Dim())
		}
		vecs, err := e.Embed(t.Context(), []string{"a", "b", "c"})
		if err != nil {
			t.Fatal(err)
		}
		calls := srv.Embeds()
		if len(calls) != 2 || calls[0].Dimensions != 16 || len(vecs) != 3 || len(vecs[2]) != 16 {
			t.Fatalf("%d calls (%+v), %d vectors", len(calls), calls, len(vecs))
		}
	})

	t.Run("RetriesRateLimitsAndServerErrors", func(t *testing.T) {
		t.Parallel()
		srv := openaitest.New(t, testKey)
		srv.EmbedStatus = []int{http.StatusTooManyRequests, http.StatusBadGateway}
		e, err := retrieval.NewOpenAIEmbedder(retrieval.OpenAIConfig{BaseURL: srv.BaseURL(), APIKey: testKey, Model: "m",
			Backoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		vecs, err := e.Embed(t.Context(), []string{"hello"})
		if err != nil || len(vecs) != 1 {
			t.Fatalf("Embed after a 429 and a 502 = %d vectors, %v", len(vecs), err)
		}
		if n := len(srv.Embeds()); n != 3 {
			t.Fatalf("%d calls, want 3 (two failures, one success)", n)
		}
	})

	t.Run("GivesUpAfterRetries", func(t *testing.T) {
		t.Parallel()
		srv := openaitest.New(t, testKey)
		srv.EmbedStatus = []int{429, 429, 429, 429}
		e, _ := retrieval.NewOpenAIEmbedder(retrieval.OpenAIConfig{BaseURL: srv.BaseURL(), APIKey: testKey, Model: "m",
			Retries: 1, Backoff: time.Millisecond})
		_, err := e.Embed(t.Context(), []string{"hello"})
		if kefu.CodeOf(err) != kefu.Unavailable || !strings.Contains(err.Error(), "429") {
			t.Fatalf("Embed = %v, want unavailable naming 429", err)
		}
		if n := len(srv.Embeds()); n != 2 {
			t.Fatalf("%d calls, want 2 (one retry)", n)
		}
	})

	t.Run("BadKeyIsNotRetriedNorShown", func(t *testing.T) {
		t.Parallel()
		srv := openaitest.New(t, testKey)
		const wrong = "sk-wrong-9876543210zyxwvu"
		e, _ := retrieval.NewOpenAIEmbedder(retrieval.OpenAIConfig{BaseURL: srv.BaseURL(), APIKey: wrong, Model: "m", Backoff: time.Millisecond})
		_, err := e.Embed(t.Context(), []string{"hello"})
		if err == nil {
			t.Fatal("Embed with a wrong key succeeded")
		}
		msg := err.Error()
		if strings.Contains(msg, wrong) || strings.Contains(msg, wrong[:8]) {
			t.Fatalf("the error shows the key: %s", msg)
		}
		if !strings.Contains(msg, "401") || kefu.CodeOf(err) != kefu.Internal {
			t.Fatalf("error = %q (%s), want a 401 and internal", msg, kefu.CodeOf(err))
		}
		if n := srv.Requests(); n != 1 {
			t.Fatalf("%d requests, want 1: a 401 is not retried", n)
		}
	})

	t.Run("UnreachableEndpoint", func(t *testing.T) {
		t.Parallel()
		srv := openaitest.New(t, testKey)
		url := srv.BaseURL()
		srv.Close()
		e, _ := retrieval.NewOpenAIEmbedder(retrieval.OpenAIConfig{BaseURL: url, APIKey: testKey, Model: "m"})
		_, err := e.Embed(t.Context(), []string{"hello"})
		if kefu.CodeOf(err) != kefu.Unavailable || strings.Contains(err.Error(), testKey) {
			t.Fatalf("Embed against a closed server = %v, want unavailable without the key", err)
		}
	})
}
