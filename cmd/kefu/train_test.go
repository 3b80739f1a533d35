package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kefu-dev/kefu/nlu"
)

// TestTrainPipeline trains a tiny model with the real trainer (PyTorch, ONNX export), loads
// it through the Go path, and checks the Go tokenizer against the golden vectors that run
// wrote, n-grams included: the whole training → serving chain on a fresh vocabulary.
func TestTrainPipeline(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Fatal("python3 is missing: run the tests with scripts/test, which installs the trainer's packages")
	}
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("text,intent\n")
	data := map[string][]string{
		"greeting": {"hello", "hi there", "good morning", "hey", "你好", "您好", "早上好", "在吗"},
		"refund":   {"i want a refund", "refund my order", "money back please", "where is my refund", "我要退款", "退款多久到账", "把钱退给我", "申请退款"},
		"shipping": {"when will it ship", "how long is delivery", "shipping time", "is it shipped yet", "什么时候发货", "几天能到", "发货时间", "快递要几天"},
		"oos":      {"what's the weather", "tell me a joke", "who won the game", "sing a song", "今天天气怎么样", "讲个笑话", "谁是总统", "推荐电影"},
	}
	for intent, texts := range data {
		for _, tx := range texts {
			fmt.Fprintf(&b, "%s,%s\n", tx, intent)
		}
	}
	train := filepath.Join(dir, "train.csv")
	if err := os.WriteFile(train, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "model")
	err := nluTrain(t.Context(), []string{"--script", "../../training/train_intent.py", "--train", train, "--out", out,
		"--knowledge", "", "--epochs", "3", "--hidden", "32", "--layers", "1", "--heads", "2",
		"--ngram-buckets", "512", "--threads", "1", "--version", "test-0"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := loadModel(nlu.FindRuntime(), out)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.Labels(); !slices.Equal(got, []string{"greeting", nlu.OutOfScope, "refund", "shipping"}) {
		t.Fatalf("labels = %v", got)
	}
	if _, err := c.Understand(t.Context(), "我要退款"); err != nil {
		t.Fatal(err)
	}
	n, err := c.Tokenizer().CheckGolden(filepath.Join(out, "tokenizer_golden.jsonl"), 64)
	if err != nil {
		t.Error(err)
	}
	if n < 20 {
		t.Fatalf("%d golden vectors", n)
	}
}
