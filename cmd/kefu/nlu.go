package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/kefu-dev/kefu/nlu"
)

// nluCmd is `kefu nlu train|eval|bench`.
func nluCmd(ctx context.Context, args []string, log *slog.Logger) error {
	if len(args) == 0 {
		return errors.New("usage: kefu nlu train|eval|bench [flags]")
	}
	switch args[0] {
	case "train":
		return nluTrain(ctx, args[1:])
	case "eval":
		return nluEval(ctx, args[1:])
	case "bench":
		return nluBench(ctx, args[1:])
	default:
		return fmt.Errorf("kefu nlu: unknown command %q (want train, eval or bench)", args[0])
	}
}

// nluTrain runs the PyTorch trainer (training/train_intent.py) with Debian's Python.
func nluTrain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("nlu train", flag.ContinueOnError)
	python := fs.String("python", envOr("KEFU_PYTHON", "/usr/bin/python3"), "Python with torch and onnx")
	script := fs.String("script", "training/train_intent.py", "the trainer")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: kefu nlu train --train FILE [--val FILE] --out DIR [trainer flags…]\n\nAll flags after the ones below go to training/train_intent.py (see its --help).")
		fs.PrintDefaults()
	}
	// Our flags first; everything else is the trainer's.
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-python") || strings.HasPrefix(a, "--python") || strings.HasPrefix(a, "-script") || strings.HasPrefix(a, "--script") {
			if !strings.Contains(a, "=") && i+1 < len(args) {
				if err := fs.Parse([]string{a, args[i+1]}); err != nil {
					return err
				}
				i++
			} else if err := fs.Parse([]string{a}); err != nil {
				return err
			}
			continue
		}
		rest = append(rest, a)
	}
	path, err := findDir(*script)
	if err != nil {
		return fmt.Errorf("trainer %s not found (run from the repository)", *script)
	}
	cmd := exec.CommandContext(ctx, *python, append([]string{path}, rest...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1")
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("training failed: %w", err)
	}
	return nil
}

type labelled struct {
	text, intent string
	line         int
}

// readLabelled reads a CSV with columns text,intent; errors name the file and line.
func readLabelled(path, oosLabel string) ([]labelled, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s:1: %w", path, err)
	}
	ti, ii := slices.Index(header, "text"), slices.Index(header, "intent")
	if ti < 0 || ii < 0 {
		return nil, fmt.Errorf("%s:1: want columns text and intent, have %s", path, strings.Join(header, ","))
	}
	var out []labelled
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("%s:%d: %v", path, pe.StartLine, pe.Err)
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		line, _ := r.FieldPos(0)
		if len(rec) <= max(ti, ii) || strings.TrimSpace(rec[ti]) == "" {
			return nil, fmt.Errorf("%s:%d: empty text or missing column", path, line)
		}
		intent := strings.TrimSpace(rec[ii])
		if intent == oosLabel {
			intent = nlu.OutOfScope
		}
		out = append(out, labelled{text: rec[ti], intent: intent, line: line})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no examples", path)
	}
	return out, nil
}

// EvalReport is what `kefu nlu eval` prints.
type EvalReport struct {
	Model        string  `json:"model"`
	Test         string  `json:"test"`
	Examples     int     `json:"examples"`
	Accuracy     float64 `json:"accuracy"` // in-scope examples given their intent
	MacroF1      float64 `json:"macro_f1"`
	OOSRecall    float64 `json:"oos_recall,omitempty"`
	OOSPrecision float64 `json:"oos_precision,omitempty"`
	ECE          float64 `json:"ece"`
	P50Ms        float64 `json:"latency_p50_ms"`
	P99Ms        float64 `json:"latency_p99_ms"`
}

func loadModel(ort, dir string) (*nlu.Classifier, error) {
	if ort == "" {
		ort = nlu.FindRuntime()
	}
	if err := nlu.InitRuntime(ort); err != nil {
		return nil, err
	}
	d, err := findDir(dir)
	if err != nil {
		return nil, err
	}
	return nlu.Load(d)
}

// nluEval measures a model on labelled data through the Go path (tokenizer + ONNX Runtime).
func nluEval(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("nlu eval", flag.ContinueOnError)
	model := fs.String("model", envOr("KEFU_MODEL_DIR", "models/intent"), "model folder")
	test := fs.String("test", "", "CSV with columns text,intent")
	oos := fs.String("oos-label", "oos", "label of out-of-scope examples in the test file")
	ort := fs.String("onnxruntime-lib", os.Getenv("ONNXRUNTIME_LIB"), "ONNX Runtime library")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *test == "" {
		return errors.New("kefu nlu eval: --test FILE is required")
	}
	data, err := readLabelled(*test, *oos)
	if err != nil {
		return err
	}
	c, err := loadModel(*ort, *model)
	if err != nil {
		return err
	}
	defer c.Close()
	rep, err := evaluate(ctx, c, data, os.Stderr)
	if err != nil {
		return err
	}
	rep.Model, rep.Test = *model, *test
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

func evaluate(ctx context.Context, c *nlu.Classifier, data []labelled, progress io.Writer) (EvalReport, error) {
	known := map[string]bool{}
	for _, l := range c.Labels() {
		known[l] = true
	}
	type pred struct{ want, got, top string }
	preds := make([]pred, 0, len(data))
	lat := make([]float64, 0, len(data))
	var confs []float64
	var correct []bool
	started := time.Now()
	for i, ex := range data {
		t0 := time.Now()
		res, err := c.Understand(ctx, ex.text)
		if err != nil {
			return EvalReport{}, fmt.Errorf("line %d: %w", ex.line, err)
		}
		lat = append(lat, float64(time.Since(t0).Microseconds())/1000)
		preds = append(preds, pred{want: ex.intent, got: res.Intent, top: res.Ranking[0].Intent})
		confs = append(confs, res.Ranking[0].Confidence)
		correct = append(correct, res.Ranking[0].Intent == ex.intent)
		if progress != nil && (i+1)%1000 == 0 {
			fmt.Fprintf(progress, "eval: %d/%d (%.0f/s)\n", i+1, len(data), float64(i+1)/time.Since(started).Seconds())
		}
	}
	rep := EvalReport{Examples: len(data)}
	var inScope, inRight, oosN, oosTP, oosPred int
	classes := map[string]bool{}
	for _, p := range preds {
		classes[p.want], classes[p.got] = true, true
		if p.want == nlu.OutOfScope {
			oosN++
			if p.got == nlu.OutOfScope {
				oosTP++
			}
		} else {
			inScope++
			if p.got == p.want {
				inRight++
			}
		}
		if p.got == nlu.OutOfScope {
			oosPred++
		}
	}
	if inScope > 0 {
		rep.Accuracy = round4(float64(inRight) / float64(inScope))
	}
	if oosN > 0 {
		rep.OOSRecall = round4(float64(oosTP) / float64(oosN))
		rep.OOSPrecision = round4(float64(oosTP) / math.Max(float64(oosPred), 1))
	}
	var f1sum float64
	for cl := range classes {
		var tp, fp, fn float64
		for _, p := range preds {
			switch {
			case p.got == cl && p.want == cl:
				tp++
			case p.got == cl:
				fp++
			case p.want == cl:
				fn++
			}
		}
		if tp+fp+fn > 0 {
			f1sum += 2 * tp / (2*tp + fp + fn)
		}
	}
	rep.MacroF1 = round4(f1sum / float64(len(classes)))
	rep.ECE = round4(ece(confs, correct, 15))
	slices.Sort(lat)
	rep.P50Ms = round4(percentile(lat, 0.50))
	rep.P99Ms = round4(percentile(lat, 0.99))
	return rep, nil
}

// ece is the expected calibration error of top-1 confidences over equal-width bins.
func ece(conf []float64, correct []bool, bins int) float64 {
	var total float64
	for b := range bins {
		lo, hi := float64(b)/float64(bins), float64(b+1)/float64(bins)
		var n, sc, sa float64
		for i, c := range conf {
			if c > lo && c <= hi {
				n++
				sc += c
				if correct[i] {
					sa++
				}
			}
		}
		if n > 0 {
			total += n / float64(len(conf)) * math.Abs(sc/n-sa/n)
		}
	}
	return total
}

func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func round4(x float64) float64 { return math.Round(x*10000) / 10000 }
