package main

import (
	"encoding/json"
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

// TestTrainEncoderPipeline trains a tiny sentence encoder with the real trainer
// (training/train_encoder.py: PyTorch, ONNX export) on a tiny knowledge base and intents file,
// loads it as the knowledge embedder through the Go path, and checks the tokenizer against
// the golden vectors that run wrote.
func TestTrainEncoderPipeline(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Fatal("python3 is missing: run the tests with scripts/test, which installs the trainer's packages")
	}
	dir := t.TempDir()
	var kb strings.Builder
	kb.WriteString("version: 1\nentries:\n")
	for _, e := range []struct{ key, zh, en string }{
		{"shipping-time", `{title: 发货时间, question: 多久发货, alternates: [几天能到, 什么时候发货], answer: 24小时内发货。}`,
			`{title: Shipping time, question: how long does shipping take, alternates: [when will it ship, delivery time], answer: We ship within 24 hours.}`},
		{"refund-time", `{title: 退款时效, question: 退款多久到账, alternates: [钱什么时候退回来, 退款进度], answer: 1个工作日内退款。}`,
			`{title: Refund times, question: how long does a refund take, alternates: [where is my refund, refund status], answer: Refunds take a day.}`},
		{"invoice", `{title: 发票, question: 怎么开发票, alternates: [能开发票吗, 电子发票], answer: 在订单页申请发票。}`,
			`{title: Invoices, question: how do i get an invoice, alternates: [can i get a receipt, company invoice], answer: Request it on the order page.}`},
	} {
		fmt.Fprintf(&kb, "  - key: %s\n    zh: %s\n    en: %s\n", e.key, e.zh, e.en)
	}
	intents := "text,intent,language\n" +
		"你好,greeting,zh\n您好,greeting,zh\nhello,greeting,en\nhi there,greeting,en\n" +
		"谢谢,thanks,zh\n多谢,thanks,zh\nthank you,thanks,en\nthanks a lot,thanks,en\n" +
		"讲个笑话,oos,zh\nwhat's the weather,oos,en\n"
	kbPath, intentsPath := filepath.Join(dir, "knowledge.yaml"), filepath.Join(dir, "intents.csv")
	for path, text := range map[string]string{kbPath: kb.String(), intentsPath: intents} {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "encoder")
	err := nluTrain(t.Context(), []string{"--script", "../../training/train_encoder.py", "--knowledge", kbPath,
		"--intents", intentsPath, "--intents-test", "", "--out", out, "--steps", "12", "--eval-every", "6",
		"--groups", "3", "--hidden", "32", "--layers", "1", "--heads", "2", "--ngram-buckets", "512",
		"--holdout", "3", "--threads", "1", "--version", "encoder-test-0"})
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Version    string         `json:"version"`
		Kind       string         `json:"kind"`
		DataSHA256 string         `json:"data_sha256"`
		MaxLen     int            `json:"max_len"`
		Dims       int            `json:"dims"`
		Seconds    *float64       `json:"train_seconds"`
		Metrics    map[string]any `json:"metrics"`
	}
	b, err := os.ReadFile(filepath.Join(out, "model.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Version != "encoder-test-0" || meta.Kind != "encoder" || len(meta.DataSHA256) != 64 || meta.MaxLen != 64 ||
		meta.Dims != 32 || meta.Seconds == nil || meta.Metrics["kb_heldout"] == nil {
		t.Errorf("model.json = %s", b)
	}
	e, err := loadEncoder(Config{EncoderDir: out})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.EmbedderID() != "onnx-encoder:encoder-test-0" || e.Dim() != 32 {
		t.Errorf("EmbedderID %q, Dim %d; want onnx-encoder:encoder-test-0, 32", e.EmbedderID(), e.Dim())
	}
	vecs, err := e.Embed(t.Context(), []string{"退款多久到账", "how long does shipping take"})
	if err != nil || len(vecs) != 2 || len(vecs[0]) != 32 {
		t.Fatalf("Embed = %d vectors, %v", len(vecs), err)
	}
	n, err := e.Tokenizer().CheckGolden(filepath.Join(out, "tokenizer_golden.jsonl"), meta.MaxLen)
	if err != nil {
		t.Error(err)
	}
	if n < 20 {
		t.Fatalf("%d golden vectors", n)
	}
}
