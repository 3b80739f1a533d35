package retrieval_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kefu-dev/kefu"
	"github.com/kefu-dev/kefu/internal/openaitest"
	"github.com/kefu-dev/kefu/retrieval"
)

var evidence = []retrieval.Evidence{
	{Source: retrieval.Source{EntryID: 11, Key: "refund-time", Title: "Refund times", Language: "en", Version: 2},
		Text: "Refunds reach your account within 1-3 working days."},
	{Source: retrieval.Source{EntryID: 12, Key: "shipping-fee", Title: "Shipping fees", Language: "en", Version: 1, Link: "https://shop.example/fees"},
		Text: "Orders over 99 yuan ship free."},
}

func TestGenerator(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T, reply openaitest.Reply) (*openaitest.Server, *retrieval.Generator) {
		t.Helper()
		srv := openaitest.New(t, testKey)
		srv.Chat = func(openaitest.ChatRequest) openaitest.Reply { return reply }
		g, err := retrieval.NewGenerator(retrieval.GeneratorConfig{BaseURL: srv.BaseURL(), APIKey: testKey, Model: "chat-small", MaxTokens: 300})
		if err != nil {
			t.Fatal(err)
		}
		return srv, g
	}
	collect := func(deltas *[]string) func(string) {
		return func(d string) { *deltas = append(*deltas, d) }
	}

	t.Run("StreamsInOrderAndCites", func(t *testing.T) {
		t.Parallel()
		chunks := []string{"\n", "Free shipping ", "starts at 99 yuan [2]", ", and refunds take ", "1-3 days [1][7]."}
		srv, g := setup(t, openaitest.Reply{Chunks: chunks})
		var deltas []string
		gen, err := g.Generate(t.Context(), retrieval.Question{Text: "运费和退款？", Language: "zh", Evidence: evidence}, collect(&deltas))
		if err != nil {
			t.Fatal(err)
		}
		want := "Free shipping starts at 99 yuan [2], and refunds take 1-3 days [1][7]."
		if strings.Join(deltas, "") != want || gen.Text != want {
			t.Fatalf("deltas %q, text %q, want %q", deltas, gen.Text, want)
		}
		if len(deltas) < 4 {
			t.Fatalf("%d deltas: the answer was not streamed piece by piece", len(deltas))
		}
		if !slices.Equal(gen.Cited, []int{2, 1}) || len(gen.Sources) != 2 || gen.Sources[0].Key != "shipping-fee" || gen.Refused {
			t.Fatalf("cited %v, sources %+v, refused %v", gen.Cited, gen.Sources, gen.Refused)
		}
		if gen.Reply != "Free shipping starts at 99 yuan [1], and refunds take 1-3 days [2]." {
			t.Fatalf("reply %q: citations not renumbered to the sources' order", gen.Reply)
		}
		rec := gen.Record
		if rec.Model != "chat-small" || !slices.Equal(rec.Passages, []int64{11, 12}) || len(rec.Prompt) != 2 || !slices.Equal(rec.Cited, []int{2, 1}) {
			t.Fatalf("record = %+v", rec)
		}
		calls := srv.Chats()
		if len(calls) != 1 {
			t.Fatalf("%d chat calls", len(calls))
		}
		c := calls[0]
		if !c.Stream || c.MaxTokens != 300 || c.Temperature <= 0 || c.Temperature > 0.3 || c.Model != "chat-small" {
			t.Fatalf("request: stream %v, max_tokens %d, temperature %v, model %q", c.Stream, c.MaxTokens, c.Temperature, c.Model)
		}
		sys, user := c.Message("system"), c.Message("user")
		if sys != rec.Prompt[0].Content || user != rec.Prompt[1].Content {
			t.Fatal("the recorded prompt is not the prompt sent")
		}
		for _, s := range []string{retrieval.RefusalMarker, "Chinese", "[1]", "only"} {
			if !strings.Contains(sys, s) {
				t.Errorf("system prompt lacks %q:\n%s", s, sys)
			}
		}
		for _, s := range []string{"[1] Refund times\nRefunds reach", "[2] Shipping fees", "Link: https://shop.example/fees", "运费和退款？"} {
			if !strings.Contains(user, s) {
				t.Errorf("user prompt lacks %q:\n%s", s, user)
			}
		}
	})

	t.Run("RefusalIsNotStreamed", func(t *testing.T) {
		t.Parallel()
		for _, chunks := range [][]string{{"NO", "_ANS", "WER"}, {" \n", "NO_ANSWER"}, {"**NO_", "ANSWER**"}, {"NO_ANSWER", " — the passages say nothing about it"}} {
			_, g := setup(t, openaitest.Reply{Chunks: chunks})
			var deltas []string
			gen, err := g.Generate(t.Context(), retrieval.Question{Text: "do you sell cars?", Language: "en", Evidence: evidence}, collect(&deltas))
			if err != nil {
				t.Fatal(err)
			}
			if !gen.Refused || len(deltas) != 0 {
				t.Errorf("chunks %q: refused %v, deltas %q", chunks, gen.Refused, deltas)
			}
		}
	})

	t.Run("AnswerStartingLikeTheMarker", func(t *testing.T) {
		t.Parallel()
		_, g := setup(t, openaitest.Reply{Chunks: []string{"N", "O", " problem: refunds take 1-3 days [1]."}})
		var deltas []string
		gen, err := g.Generate(t.Context(), retrieval.Question{Text: "refund?", Language: "en", Evidence: evidence}, collect(&deltas))
		if err != nil || gen.Refused {
			t.Fatalf("Generate = %+v, %v", gen, err)
		}
		if strings.Join(deltas, "") != "NO problem: refunds take 1-3 days [1]." || deltas[0] != "NO problem: refunds take 1-3 days [1]." {
			t.Fatalf("deltas %q: the held-back start must come out whole once it is not the marker", deltas)
		}
	})

	t.Run("EndpointErrorIsAnError", func(t *testing.T) {
		t.Parallel()
		_, g := setup(t, openaitest.Reply{Status: http.StatusInternalServerError})
		var deltas []string
		_, err := g.Generate(t.Context(), retrieval.Question{Text: "refund?", Evidence: evidence}, collect(&deltas))
		if kefu.CodeOf(err) != kefu.Unavailable || !strings.Contains(err.Error(), "500") || len(deltas) != 0 {
			t.Fatalf("Generate against a 500 = %v (deltas %q), want unavailable", err, deltas)
		}
		if strings.Contains(err.Error(), testKey) {
			t.Fatalf("the error shows the key: %v", err)
		}
	})

	t.Run("CutAnswerIsAnError", func(t *testing.T) {
		t.Parallel()
		_, g := setup(t, openaitest.Reply{Chunks: []string{"Refunds take 1-3"}, Finish: "length"})
		if _, err := g.Generate(t.Context(), retrieval.Question{Text: "refund?", Evidence: evidence}, nil); kefu.CodeOf(err) != kefu.Unavailable {
			t.Fatalf("Generate of a cut answer = %v, want unavailable", err)
		}
	})

	t.Run("Timeout", func(t *testing.T) {
		t.Parallel()
		srv := openaitest.New(t, testKey)
		release := make(chan struct{})
		t.Cleanup(func() { close(release) })
		srv.Chat = func(openaitest.ChatRequest) openaitest.Reply { <-release; return openaitest.Reply{} }
		g, _ := retrieval.NewGenerator(retrieval.GeneratorConfig{BaseURL: srv.BaseURL(), APIKey: testKey, Model: "m"})
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		t0 := time.Now()
		_, err := g.Generate(ctx, retrieval.Question{Text: "refund?", Evidence: evidence}, nil)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(t0) > 5*time.Second {
			t.Fatalf("Generate past its deadline = %v after %v", err, time.Since(t0))
		}
	})

	t.Run("NoEvidence", func(t *testing.T) {
		t.Parallel()
		srv, g := setup(t, openaitest.Reply{})
		if _, err := g.Generate(t.Context(), retrieval.Question{Text: "refund?"}, nil); kefu.CodeOf(err) != kefu.Invalid {
			t.Fatalf("Generate without evidence = %v, want invalid", err)
		}
		if n := srv.Requests(); n != 0 {
			t.Fatalf("%d requests without evidence", n)
		}
	})
}

func TestCitations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		text string
		n    int
		want []int
	}{
		{"no citations", 3, nil},
		{"a [1] b [3] c [1]", 3, []int{1, 3}},
		{"a [2, 1] b [4]", 3, []int{2, 1}},
		{"退款1-3天到账【1】，满99包邮【2、3】", 3, []int{1, 2, 3}},
		{"in [2024] and [0]", 3, nil},
	}
	for _, tt := range tests {
		if got := retrieval.Citations(tt.text, tt.n); !slices.Equal(got, tt.want) {
			t.Errorf("Citations(%q, %d) = %v, want %v", tt.text, tt.n, got, tt.want)
		}
	}
}
