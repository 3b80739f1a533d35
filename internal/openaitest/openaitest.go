// Package openaitest is a real HTTP server that speaks the parts of the OpenAI API Kefu uses:
// POST /v1/embeddings and POST /v1/chat/completions with server-sent events. Tests point the
// embedder and the generator at it, script its answers and failures, and count its calls.
package openaitest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// EmbedRequest is what an embeddings call asked for.
type EmbedRequest struct {
	Input      []string `json:"input"`
	Model      string   `json:"model"`
	Dimensions int      `json:"dimensions"`
}

// ChatRequest is what a chat call asked for.
type ChatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
	MaxTokens   int     `json:"max_tokens"`
	Temperature float64 `json:"temperature"`
	Stream      bool    `json:"stream"`
}

// Message returns the content of the first message with role, or "".
func (r ChatRequest) Message(role string) string {
	for _, m := range r.Messages {
		if m.Role == role {
			return m.Content
		}
	}
	return ""
}

// Reply is how the server answers one chat call: Chunks streamed one event each, then a
// final event with Finish ("stop" when empty) and [DONE]; or, with Status set, that HTTP
// status and an error body.
type Reply struct {
	Chunks []string
	Finish string
	Status int
}

// Server is the fake endpoint. Set its fields before the calls they shape.
type Server struct {
	*httptest.Server
	Key string // the bearer token it accepts; a call with another gets 401 repeating it
	Dim int    // vector size when a request sets no dimensions (default 8)

	mu sync.Mutex
	// EmbedStatus are the statuses the next embeddings calls fail with, in order.
	EmbedStatus []int
	// Chat answers a chat call (default: one chunk saying "ok").
	Chat     func(ChatRequest) Reply
	embeds   []EmbedRequest
	chats    []ChatRequest
	requests int
}

// New starts a server that accepts key, closed when the test ends.
func New(t testing.TB, key string) *Server {
	s := &Server{Key: key, Dim: 8}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/embeddings", s.embeddings)
	mux.HandleFunc("POST /v1/chat/completions", s.chat)
	s.Server = httptest.NewServer(s.auth(mux))
	t.Cleanup(s.Close)
	return s
}

// BaseURL is the URL to configure clients with.
func (s *Server) BaseURL() string { return s.URL + "/v1" }

// Requests is the number of requests so far, rejected ones included.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Embeds returns the embeddings calls so far.
func (s *Server) Embeds() []EmbedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]EmbedRequest(nil), s.embeds...)
}

// Chats returns the chat calls so far.
func (s *Server) Chats() []ChatRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ChatRequest(nil), s.chats...)
}

// SetChat replaces the chat answerer.
func (s *Server) SetChat(f func(ChatRequest) Reply) {
	s.mu.Lock()
	s.Chat = f
	s.mu.Unlock()
}

// Vector is the vector the server returns for text: a fixed function of the text, of unit
// length.
func Vector(text string, dim int) []float32 {
	v := make([]float32, dim)
	var norm float64
	for i := range v {
		h := sha256.Sum256(fmt.Appendf(nil, "%d:%s", i, text))
		x := float64(binary.BigEndian.Uint32(h[:4]))/math.MaxUint32 - 0.5
		v[i], norm = float32(x), norm+x*x
	}
	for i := range v {
		v[i] /= float32(math.Sqrt(norm))
	}
	return v
}

func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests++
		s.mu.Unlock()
		got := r.Header.Get("Authorization")
		if got != "Bearer "+s.Key {
			// Like some real servers, it repeats (part of) the key it was given.
			writeError(w, http.StatusUnauthorized, "Incorrect API key provided: "+got, "invalid_api_key")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeError(w http.ResponseWriter, status int, msg, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": "error", "code": code}})
}

func (s *Server) embeddings(w http.ResponseWriter, r *http.Request) {
	var req EmbedRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Input) == 0 || req.Model == "" {
		writeError(w, http.StatusBadRequest, "input (a list of strings) and model are required", "invalid_request")
		return
	}
	s.mu.Lock()
	s.embeds = append(s.embeds, req)
	status := 0
	if len(s.EmbedStatus) > 0 {
		status, s.EmbedStatus = s.EmbedStatus[0], s.EmbedStatus[1:]
	}
	dim := s.Dim
	s.mu.Unlock()
	if status != 0 {
		writeError(w, status, http.StatusText(status), "scripted")
		return
	}
	if req.Dimensions > 0 {
		dim = req.Dimensions
	}
	type item struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	}
	data := make([]item, len(req.Input))
	for i, text := range req.Input {
		// Listed last to first: clients must place vectors by index, not by position.
		data[len(data)-1-i] = item{Object: "embedding", Index: i, Embedding: Vector(text, dim)}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data, "model": req.Model,
		"usage": map[string]int{"prompt_tokens": len(req.Input), "total_tokens": len(req.Input)}})
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	var req ChatRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Model == "" || len(req.Messages) == 0 {
		writeError(w, http.StatusBadRequest, "model and messages are required", "invalid_request")
		return
	}
	s.mu.Lock()
	s.chats = append(s.chats, req)
	answer := s.Chat
	s.mu.Unlock()
	rep := Reply{Chunks: []string{"ok"}}
	if answer != nil {
		rep = answer(req)
	}
	if rep.Status != 0 {
		writeError(w, rep.Status, http.StatusText(rep.Status), "scripted")
		return
	}
	if !req.Stream {
		writeError(w, http.StatusBadRequest, "this fake only streams", "invalid_request")
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	fl, _ := w.(http.Flusher)
	event := func(delta map[string]string, finish string) {
		choice := map[string]any{"index": 0, "delta": delta, "finish_reason": nil}
		if finish != "" {
			choice["finish_reason"] = finish
		}
		b, _ := json.Marshal(map[string]any{"id": "chatcmpl-test", "object": "chat.completion.chunk", "model": req.Model,
			"choices": []any{choice}})
		fmt.Fprintf(w, "data: %s\n\n", b)
		if fl != nil {
			fl.Flush()
		}
	}
	event(map[string]string{"role": "assistant"}, "")
	for _, c := range rep.Chunks {
		event(map[string]string{"content": c}, "")
	}
	finish := rep.Finish
	if finish == "" {
		finish = "stop"
	}
	event(map[string]string{}, finish)
	fmt.Fprint(w, "data: [DONE]\n\n")
}
