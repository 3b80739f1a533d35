package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kefu-dev/kefu/internal/pgtest"
	"github.com/kefu-dev/kefu/nlu"
)

func TestEvaluate(t *testing.T) {
	t.Parallel()
	c, err := loadModel(nlu.FindRuntime(), "../../models/intent")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	path := filepath.Join(t.TempDir(), "test.csv")
	data := "text,intent\n你好,greeting\nhello,greeting\n转人工,human_agent\nwhat's the weather on mars,oos\ntell me a joke,oos\n我要退款,refund\n"
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	rows, err := readLabelled(path, "oos")
	if err != nil || len(rows) != 6 || rows[3].intent != nlu.OutOfScope {
		t.Fatalf("readLabelled = %+v, %v", rows, err)
	}
	rep, err := evaluate(t.Context(), c, rows, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Examples != 6 || rep.Accuracy < 0.5 || rep.MacroF1 <= 0 || rep.ECE < 0 || rep.ECE > 1 || rep.P50Ms <= 0 || rep.P99Ms < rep.P50Ms {
		t.Fatalf("report = %+v", rep)
	}
}

func TestReadLabelledErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct{ name, body, want string }{
		{"no intent column", "text,label\nhi,greeting\n", ":1: want columns text and intent"},
		{"empty text", "text,intent\nhi,greeting\n,greeting\n", ":3: empty text"},
		{"no rows", "text,intent\n", "no examples"},
		{"bad quoting", "text,intent\n\"hi,greeting\n", ":2:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".csv")
			if err := os.WriteFile(p, []byte(tt.body), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := readLabelled(p, "oos")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("readLabelled(%q) = %v, want an error containing %q", tt.body, err, tt.want)
			}
		})
	}
}

// TestBadModelFailsAtStart: a wrong model path or a vocabulary that does not fit the model is
// a clear error when the server starts, not on a customer's message.
func TestBadModelFailsAtStart(t *testing.T) {
	t.Parallel()
	broken := t.TempDir()
	for _, f := range []string{"model.onnx", "model.json", "labels.json"} {
		b, err := os.ReadFile(filepath.Join("../../models/intent", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(broken, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	vocab, _ := os.ReadFile("../../models/intent/vocab.txt")
	extra := strings.Repeat("zzextra\n", 50000) // a vocabulary far larger than the model's table
	if err := os.WriteFile(filepath.Join(broken, "vocab.txt"), append(vocab, extra...), 0o644); err != nil {
		t.Fatal(err)
	}
	_, url := pgtest.SchemaURL(t)
	for _, tt := range []struct{ dir, want string }{
		{"no/such/model", "no/such/model"},
		{broken, "vocab"},
	} {
		m := &Main{
			Config: Config{Addr: "127.0.0.1:0", DatabaseURL: url, ORTLib: nlu.FindRuntime(), ModelDir: tt.dir, FlowsDir: "../../dialog/flows", RouteInterval: time.Second},
			Log:    slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		}
		err := m.Run(t.Context())
		m.Close()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("starting with model %s: %v, want an error naming %q", tt.dir, err, tt.want)
		}
	}
}
