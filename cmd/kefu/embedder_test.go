package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kefu-dev/kefu/nlu"
)

// TestNewEmbedder checks the choice of the knowledge embedder: the sentence encoder by default
// when its folder exists, the intent model when it does not or when asked, and a clear error
// for an encoder folder that is missing when the encoder is asked for by name.
func TestNewEmbedder(t *testing.T) {
	t.Parallel()
	intent, err := loadModel(nlu.FindRuntime(), "../../models/intent")
	if err != nil {
		t.Fatal(err)
	}
	defer intent.Close()
	missing := filepath.Join(t.TempDir(), "no-encoder")
	tests := []struct {
		embedder, dir, want string
	}{
		{"", "../../models/encoder", "onnx-encoder:"},
		{"encoder", "../../models/encoder", "onnx-encoder:"},
		{"", missing, "onnx:"},
		{"intent", "../../models/encoder", "onnx:"},
	}
	for _, tt := range tests {
		e, err := newEmbedder(t.Context(), Config{Embedder: tt.embedder, EncoderDir: tt.dir}, intent)
		if err != nil {
			t.Fatalf("-embedder %q -encoder-model %s: %v", tt.embedder, tt.dir, err)
		}
		if !strings.HasPrefix(e.EmbedderID(), tt.want) {
			t.Errorf("-embedder %q -encoder-model %s: EmbedderID %q, want %s…", tt.embedder, tt.dir, e.EmbedderID(), tt.want)
		}
		closeEmbedder(e, intent)
	}
	if _, err := intent.Understand(t.Context(), "你好"); err != nil {
		t.Errorf("closeEmbedder closed the intent model: %v", err)
	}
	_, err = newEmbedder(t.Context(), Config{Embedder: "encoder", EncoderDir: missing}, intent)
	if err == nil || !strings.Contains(err.Error(), "no-encoder") || !strings.Contains(err.Error(), "train_encoder.py") {
		t.Errorf("-embedder encoder with a missing folder: %v, want an error naming the folder and the trainer", err)
	}
	if _, err := newEmbedder(t.Context(), Config{Embedder: "bert"}, intent); err == nil || !strings.Contains(err.Error(), "encoder, intent or openai") {
		t.Errorf("-embedder bert: %v, want an error listing the embedders", err)
	}
}
