package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// BenchReport is what `kefu nlu bench` prints: medians and ratios from one run.
type BenchReport struct {
	Model              string  `json:"model"`
	Cores              int     `json:"cores"`
	Messages           int     `json:"messages"`
	TokenizerPerSecond float64 `json:"tokenizer_messages_per_second"`
	SingleP50Ms        float64 `json:"single_p50_ms"`
	SingleP99Ms        float64 `json:"single_p99_ms"`
	SinglePerSecond    float64 `json:"single_messages_per_second"`
	Concurrency        int     `json:"concurrency"`
	BatchedPerSecond   float64 `json:"batched_messages_per_second"`
	BatchedP50Ms       float64 `json:"batched_p50_ms"`
	BatchedP99Ms       float64 `json:"batched_p99_ms"`
	Speedup            float64 `json:"batched_over_single"`
}

// nluBench times the Go path: the tokenizer alone, one message at a time, and many
// concurrent callers whose runs the classifier gathers into micro-batches.
func nluBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("nlu bench", flag.ContinueOnError)
	model := fs.String("model", envOr("KEFU_MODEL_DIR", "models/intent"), "model folder")
	data := fs.String("data", "", "CSV with a text column to time (default: the built-in customer messages)")
	n := fs.Int("n", 2000, "messages per measurement")
	conc := fs.Int("concurrency", 32, "concurrent callers for the batched measurement")
	ort := fs.String("onnxruntime-lib", os.Getenv("ONNXRUNTIME_LIB"), "ONNX Runtime library")
	if err := fs.Parse(args); err != nil {
		return err
	}
	texts := benchTexts
	if *data != "" {
		rows, err := readLabelled(*data, "oos")
		if err != nil {
			return err
		}
		texts = texts[:0:0]
		for _, r := range rows {
			texts = append(texts, r.text)
		}
	}
	c, err := loadModel(*ort, *model)
	if err != nil {
		return err
	}
	defer c.Close()
	msg := func(i int) string { return texts[i%len(texts)] }
	rep := BenchReport{Model: *model, Cores: runtime.NumCPU(), Messages: *n, Concurrency: *conc}

	tok := c.Tokenizer()
	start := time.Now()
	for i := range *n * 20 {
		tok.Encode(msg(i), 64)
	}
	rep.TokenizerPerSecond = round4(float64(*n*20) / time.Since(start).Seconds())

	for i := range 50 { // warm up
		if _, err := c.Understand(ctx, msg(i)); err != nil {
			return err
		}
	}
	lat := make([]float64, 0, *n)
	start = time.Now()
	for i := range *n {
		t0 := time.Now()
		if _, err := c.Understand(ctx, msg(i)); err != nil {
			return err
		}
		lat = append(lat, float64(time.Since(t0).Microseconds())/1000)
	}
	rep.SinglePerSecond = round4(float64(*n) / time.Since(start).Seconds())
	slices.Sort(lat)
	rep.SingleP50Ms, rep.SingleP99Ms = percentile(lat, 0.5), percentile(lat, 0.99)
	fmt.Fprintf(os.Stderr, "bench: single done (%.0f/s)\n", rep.SinglePerSecond)

	var next atomic.Int64
	var mu sync.Mutex
	lat = lat[:0]
	var wg sync.WaitGroup
	var firstErr error
	start = time.Now()
	for range *conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= *n {
					return
				}
				t0 := time.Now()
				_, err := c.Understand(ctx, msg(i))
				d := float64(time.Since(t0).Microseconds()) / 1000
				mu.Lock()
				lat = append(lat, d)
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	rep.BatchedPerSecond = round4(float64(*n) / time.Since(start).Seconds())
	slices.Sort(lat)
	rep.BatchedP50Ms, rep.BatchedP99Ms = percentile(lat, 0.5), percentile(lat, 0.99)
	rep.Speedup = round4(rep.BatchedPerSecond / rep.SinglePerSecond)
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// benchTexts are customer messages of typical length (≤ 32 tokens), Chinese and English.
var benchTexts = []string{
	"我的订单到哪了，怎么还没收到货", "where is my order, it has not arrived yet", "退款多久到账？",
	"how long does a refund take", "可以开发票吗", "i need an invoice for my company", "转人工",
	"talk to a human please", "优惠券为什么用不了", "my coupon is not working at checkout",
	"修改收货地址", "can i change the delivery address after ordering", "支付失败了怎么办",
	"my card was declined but i was charged", "你好", "hello there", "谢谢", "thanks a lot",
	"这个商品有货吗，什么时候补货", "is this jacket in stock in size m",
}
