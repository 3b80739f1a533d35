package retrieval

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kefu-dev/kefu"
)

// Whether to answer is its own decision: the best entry found for a question the knowledge
// does not cover is still somebody's best match. A cosine threshold alone separates the two
// poorly (the nearest FAQ to "will it rain tomorrow?" is not far in a small encoder's
// space), so the decision is a small logistic model over findings that does not depend on
// the corpus: how close the best phrasing is, how far ahead of the runner-up it is, how much
// of the question's words the entry contains, and whether the two searches agree. It is
// fitted per embedder (`kefu kb calibrate`) on questions labelled answerable or not, on a
// validation split.

// Answerability is the fitted decision: answer when P(answerable) ≥ Threshold.
type Answerability struct {
	Embedder  string    `json:"embedder"` // the vector space it was fitted in
	Features  []string  `json:"features"`
	Weights   []float64 `json:"weights"`
	Bias      float64   `json:"bias"`
	Threshold float64   `json:"threshold"`
	// Fitted on: how many questions of each kind, and the rates on them.
	Answerable   int     `json:"answerable"`
	Unanswerable int     `json:"unanswerable"`
	AnswerRate   float64 `json:"answer_rate"`  // of answerable questions, answered
	RefusalRate  float64 `json:"refusal_rate"` // of unanswerable questions, refused
}

// featureNames are the inputs of the answerability model, in order.
var featureNames = []string{"cosine", "margin", "coverage", "covered_terms", "dense_agrees", "lexical_agrees"}

// findings are what a search found for a question, for the decision.
type findings struct {
	question   string
	terms      []string // Terms(question), split once per search
	hits       []hit
	denseTop   string                      // the key the dense search ranked first
	lexTop     string                      // the key the lexical search ranked first
	entryTerms func(Entry) map[string]bool // an entry's terms (Store.entryTermsOf)
}

// features of the question's best hit.
func (ev findings) features() []float64 {
	f := make([]float64, len(featureNames))
	if len(ev.hits) == 0 {
		return f
	}
	h := ev.hits[0]
	f[0] = h.score
	second := 0.0
	for _, o := range ev.hits[1:] {
		second = max(second, o.score)
	}
	f[1] = h.score - second
	cov, n := coverage(ev.terms, ev.entryTerms(h.entry))
	f[2] = cov
	f[3] = math.Log1p(n)
	if ev.denseTop == h.entry.Key {
		f[4] = 1
	}
	if ev.lexTop == h.entry.Key {
		f[5] = 1
	}
	return f
}

// coverage is the share of the question's distinct terms (single Chinese characters left
// out: bigrams carry them) that the entry's terms (have) contain, and how many it contains.
func coverage(terms []string, have map[string]bool) (float64, float64) {
	q := map[string]bool{}
	for _, t := range terms {
		if len([]rune(t)) > 1 || !isHan([]rune(t)[0]) {
			q[t] = true
		}
	}
	if len(q) == 0 {
		return 0, 0
	}
	n := 0
	for t := range q {
		if have[t] {
			n++
		}
	}
	return float64(n) / float64(len(q)), float64(n)
}

// entryTerms are the distinct terms of an entry's title, questions and answer.
func entryTerms(e Entry) map[string]bool {
	text := e.Title + "\n" + e.Question + "\n" + strings.Join(e.Alternates, "\n") + "\n" + e.Answer
	have := map[string]bool{}
	for _, t := range Terms(text) {
		have[t] = true
	}
	return have
}

// entryVersion names an entry's version, whose text never changes once published.
type entryVersion struct {
	id      int64
	version int
}

// entryTermsOf is entryTerms, kept per entry version: splitting a long answer costs more than
// the rest of the decision.
func (s *Store) entryTermsOf(e Entry) map[string]bool {
	k := entryVersion{e.ID, e.Version}
	if have, ok := s.terms.Get(k); ok {
		return have
	}
	have := entryTerms(e)
	s.terms.Add(k, have)
	return have
}

// Prob is P(answerable) for features f.
func (a *Answerability) Prob(f []float64) float64 {
	z := a.Bias
	for i, w := range a.Weights {
		z += w * f[i]
	}
	return 1 / (1 + math.Exp(-z))
}

// LoadAnswerability reads a fitted model; a missing file is (nil, nil).
func LoadAnswerability(path string) (*Answerability, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var a Answerability
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !slices.Equal(a.Features, featureNames) || len(a.Weights) != len(featureNames) {
		return nil, fmt.Errorf("%s: fitted on features %v, this version uses %v: run kefu kb calibrate again", path, a.Features, featureNames)
	}
	return &a, nil
}

// SetAnswerability makes the store decide with a (nil: the cosine threshold alone). A model
// fitted in another vector space is refused.
func (s *Store) SetAnswerability(a *Answerability) error {
	sp := s.space()
	if err := checkAnswerability(a, sp.embedder); err != nil {
		return err
	}
	s.sp.Store(&space{embedder: sp.embedder, denseQuery: sp.denseQuery, answerability: a})
	return nil
}

func checkAnswerability(a *Answerability, e Embedder) error {
	if a != nil && a.Embedder != e.EmbedderID() {
		return kefu.Errorf("retrieval.SetAnswerability", kefu.Invalid,
			"the answerability model was fitted for embedder %s, the store uses %s: run kefu kb calibrate", a.Embedder, e.EmbedderID())
	}
	return nil
}

// Sample is one labelled question for fitting.
type Sample struct {
	Features   []float64
	Answerable bool
}

// FitAnswerability fits the logistic model by gradient descent (L2-regularised, features
// standardised while fitting), then picks the threshold that maximises the lower of the two
// rates (answered answerable, refused unanswerable) on the samples.
func FitAnswerability(embedder string, samples []Sample) (*Answerability, error) {
	var pos, neg int
	for _, s := range samples {
		if s.Answerable {
			pos++
		} else {
			neg++
		}
	}
	if pos < 10 || neg < 10 {
		return nil, kefu.Errorf("retrieval.FitAnswerability", kefu.Invalid, "need at least 10 answerable and 10 unanswerable questions (have %d and %d)", pos, neg)
	}
	d := len(featureNames)
	mean, sd := make([]float64, d), make([]float64, d)
	for _, s := range samples {
		for i, v := range s.Features {
			mean[i] += v / float64(len(samples))
		}
	}
	for _, s := range samples {
		for i, v := range s.Features {
			sd[i] += (v - mean[i]) * (v - mean[i]) / float64(len(samples))
		}
	}
	for i := range sd {
		sd[i] = math.Sqrt(sd[i])
		if sd[i] < 1e-9 {
			sd[i] = 1
		}
	}
	// Classes weigh the same, however many of each there are.
	wPos, wNeg := float64(len(samples))/(2*float64(pos)), float64(len(samples))/(2*float64(neg))
	w, b := make([]float64, d), 0.0
	const lr, l2 = 0.1, 1e-3
	for range 3000 {
		gw, gb := make([]float64, d), 0.0
		for _, s := range samples {
			z := b
			for i, v := range s.Features {
				z += w[i] * (v - mean[i]) / sd[i]
			}
			p := 1 / (1 + math.Exp(-z))
			y, cw := 0.0, wNeg
			if s.Answerable {
				y, cw = 1, wPos
			}
			g := cw * (p - y)
			for i, v := range s.Features {
				gw[i] += g * (v - mean[i]) / sd[i]
			}
			gb += g
		}
		for i := range w {
			w[i] -= lr * (gw[i]/float64(len(samples)) + l2*w[i])
		}
		b -= lr * gb / float64(len(samples))
	}
	a := &Answerability{Embedder: embedder, Features: slices.Clone(featureNames), Weights: make([]float64, d), Bias: b,
		Answerable: pos, Unanswerable: neg}
	for i := range w { // back to raw feature units
		a.Weights[i] = w[i] / sd[i]
		a.Bias -= w[i] * mean[i] / sd[i]
	}
	best := -1.0
	for t := 0.05; t < 0.951; t += 0.01 {
		ans, ref := a.rates(samples, t)
		if m := min(ans, ref); m > best {
			best, a.Threshold, a.AnswerRate, a.RefusalRate = m, math.Round(t*100)/100, ans, ref
		}
	}
	return a, nil
}

// rates are the share of answerable samples answered and of unanswerable ones refused at
// threshold t.
func (a *Answerability) rates(samples []Sample, t float64) (answered, refused float64) {
	var pos, neg float64
	for _, s := range samples {
		yes := a.Prob(s.Features) >= t
		if s.Answerable {
			pos++
			if yes {
				answered++
			}
		} else {
			neg++
			if !yes {
				refused++
			}
		}
	}
	return answered / pos, refused / neg
}

// Samples searches every query as the bot would and labels it answerable when it has
// relevant entries: the decision is whether the knowledge covers the question (which entry
// answers it is the ranking's job).
func (s *Store) Samples(ctx context.Context, queries []EvalQuery, progress func(done int)) ([]Sample, error) {
	out := make([]Sample, 0, len(queries))
	for i, q := range queries {
		f, err := s.find(ctx, s.pool, q.Query, q.Language, 4)
		if err != nil {
			return nil, err
		}
		out = append(out, Sample{Features: f.features(), Answerable: len(q.Relevant) > 0})
		if progress != nil && (i+1)%50 == 0 {
			progress(i + 1)
		}
	}
	return out, nil
}

// AnswerabilityFile is where a model fitted for embedder lives in dir.
func AnswerabilityFile(dir, embedder string) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, embedder)
	return filepath.Join(dir, name+".json")
}
