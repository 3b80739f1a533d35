package main

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kefu-dev/kefu/internal/openaitest"
	"github.com/kefu-dev/kefu/internal/pgtest"
	"github.com/kefu-dev/kefu/nlu"
)

// TestLLMServer runs the server with -embedder openai and an LLM, both a real HTTP server
// speaking the OpenAI API: the knowledge base is embedded through it at start-up, a
// knowledge answer reaches the customer's WebSocket as delta frames and then as the stored
// message with the LLM's record and citations, and an off-topic question never reaches the
// LLM.
func TestLLMServer(t *testing.T) {
	t.Parallel()
	const key = "sk-kefu-test-0123456789abcdef"
	llm := openaitest.New(t, key)
	llm.Dim = 256 // random vectors this long are near-orthogonal: only the same text matches
	llm.Chat = func(r openaitest.ChatRequest) openaitest.Reply {
		_, after, _ := strings.Cut(r.Message("user"), "\n[1] ")
		text := strings.SplitN(after, "\n", 3)[1]
		first, _, _ := strings.Cut(text, ". ")
		return openaitest.Reply{Chunks: []string{"Sure! ", first, " [1]."}}
	}
	_, url := pgtest.SchemaURL(t)
	m := &Main{
		Config: Config{Addr: "127.0.0.1:0", DatabaseURL: url, ORTLib: nlu.FindRuntime(), ModelDir: "../../models/intent", FlowsDir: "../../dialog/flows",
			Demo: true, KBThreshold: 0.6, EscalateAfter: 3, RouteInterval: 200 * time.Millisecond, DemoPassword: "demo-password",
			Embedder: "openai", EmbedModel: "embed-test",
			LLMURL: llm.BaseURL(), LLMAPIKey: key, LLMModel: "chat-test", LLMMaxTokens: 200, LLMTimeout: 5 * time.Second},
		Log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if err := m.Run(t.Context()); err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	embedded := 0
	for _, c := range llm.Embeds() {
		if c.Model != "embed-test" {
			t.Fatalf("embeddings call with model %q", c.Model)
		}
		embedded += len(c.Input)
	}
	if embedded < 100 {
		t.Fatalf("%d texts embedded at start-up: the demo knowledge base was not embedded through the endpoint", embedded)
	}

	id, token := newSession(t, m.URL)
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(m.URL, "http")+"/ws/customer", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	type frame struct {
		Type     string          `json:"type"`
		ClientID string          `json:"client_id"`
		Text     string          `json:"text"`
		Message  json.RawMessage `json:"message"`
	}
	type message struct {
		Role string `json:"role"`
		Text string `json:"text"`
		Meta struct {
			Event   string `json:"event"`
			Sources []struct {
				Key string `json:"key"`
			} `json:"sources"`
			LLM *struct {
				Model  string `json:"model"`
				Prompt []struct {
					Role    string `json:"role"`
					Content string `json:"content"`
				} `json:"prompt"`
				Passages []int64 `json:"passages"`
			} `json:"llm"`
		} `json:"meta"`
	}
	// turn sends a message and returns the delta frames and the bot's reply that follow it.
	turn := func(clientID, text string) ([]frame, message) {
		t.Helper()
		if err := conn.WriteJSON(map[string]any{"type": "message", "client_id": clientID, "text": text}); err != nil {
			t.Fatal(err)
		}
		var deltas []frame
		_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		for {
			var f frame
			if err := conn.ReadJSON(&f); err != nil {
				t.Fatalf("waiting for the reply to %q: %v", text, err)
			}
			switch f.Type {
			case "delta":
				deltas = append(deltas, f)
			case "message":
				var msg message
				if err := json.Unmarshal(f.Message, &msg); err != nil {
					t.Fatal(err)
				}
				if msg.Role == "bot" {
					return deltas, msg
				}
			case "error":
				t.Fatalf("error frame: %+v", f)
			}
		}
	}
	if err := conn.WriteJSON(map[string]any{"type": "hello", "session_id": id, "token": token}); err != nil {
		t.Fatal(err)
	}

	want := "Sure! In-stock items ship within 24 hours of payment, weekends and holidays included [1]."
	deltas, reply := turn("q1", "How long does shipping take after I order?")
	var streamed strings.Builder
	for _, d := range deltas {
		if d.ClientID != "q1" {
			t.Fatalf("delta for %q, want q1", d.ClientID)
		}
		streamed.WriteString(d.Text)
	}
	if len(deltas) == 0 || !strings.HasPrefix(want, streamed.String()) || streamed.Len() == 0 {
		t.Fatalf("deltas %+v: want a prefix of %q", deltas, want)
	}
	// The customer gets the answer and its sources; how the model was prompted is stored
	// with the reply (for agents and audits), not sent to the customer.
	if reply.Text != want || reply.Meta.LLM == nil || reply.Meta.LLM.Model != "chat-test" || len(reply.Meta.LLM.Prompt) != 0 ||
		len(reply.Meta.Sources) != 1 || reply.Meta.Sources[0].Key != "shipping-time" {
		t.Fatalf("reply = %+v", reply)
	}
	var model string
	var prompt, passages int
	err = m.pool.QueryRow(t.Context(), `SELECT meta->'llm'->>'model', jsonb_array_length(meta->'llm'->'prompt'),
       jsonb_array_length(meta->'llm'->'passages')
FROM dialog_message WHERE session_id = $1 AND role = 'bot' ORDER BY seq DESC LIMIT 1`, id).Scan(&model, &prompt, &passages)
	if err != nil || model != "chat-test" || prompt != 2 || passages == 0 {
		t.Fatalf("stored llm record: model %q, prompt %d messages, %d passages, %v", model, prompt, passages, err)
	}
	if n := len(llm.Chats()); n != 1 {
		t.Fatalf("%d chat calls, want 1", n)
	}

	deltas, reply = turn("q2", "Can you recommend a good pizza place near the river?")
	if len(deltas) != 0 || reply.Meta.LLM != nil || len(reply.Meta.Sources) != 0 || !strings.HasPrefix(reply.Meta.Event, "fallback") {
		t.Fatalf("off-topic: deltas %+v, reply %+v", deltas, reply)
	}
	if n := len(llm.Chats()); n != 1 {
		t.Fatalf("the off-topic question reached the LLM: %d chat calls", n)
	}
}
