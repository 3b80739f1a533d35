package retrieval

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// ImportRow is one FAQ entry of an import file: JSONL {"id","question","answer"} with optional
// "language", "title", "alternatives" (a list), or CSV with the same column names (the
// alternatives separated by "|").
type ImportRow struct {
	ID           string   `json:"id"`
	Question     string   `json:"question"`
	Answer       string   `json:"answer"`
	Language     string   `json:"language"`
	Title        string   `json:"title"`
	Alternatives []string `json:"alternatives"`
}

// RowError is a rejected row of an import file.
type RowError struct {
	Line    int
	Message string
}

func (e RowError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Message) }

// Import limits: a row this long is a mistake, not an FAQ.
const (
	maxImportField = 20000
	maxImportLine  = 1 << 20
)

// ParseImport reads an import file (format "jsonl" or "csv") into entries. Every bad row is
// reported with its line; the caller imports nothing when there is any.
func ParseImport(r io.Reader, format, defaultLanguage string) ([]Entry, []RowError) {
	var rows []ImportRow
	var lines []int
	var errs []RowError
	switch format {
	case "csv":
		cr := csv.NewReader(r)
		cr.FieldsPerRecord = -1
		header, err := cr.Read()
		if err != nil {
			return nil, []RowError{{1, "no header row: " + err.Error()}}
		}
		col := map[string]int{}
		for i, h := range header {
			col[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))] = i
		}
		for _, need := range []string{"id", "question", "answer"} {
			if _, ok := col[need]; !ok {
				return nil, []RowError{{1, fmt.Sprintf("the header has no %q column (it has %q)", need, header)}}
			}
		}
		get := func(rec []string, name string) string {
			if i, ok := col[name]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		for {
			rec, err := cr.Read()
			if err == io.EOF {
				break
			}
			line, _ := cr.FieldPos(0)
			if err != nil {
				errs = append(errs, RowError{line, err.Error()})
				if _, ok := err.(*csv.ParseError); ok {
					continue
				}
				break
			}
			row := ImportRow{ID: get(rec, "id"), Question: get(rec, "question"), Answer: get(rec, "answer"),
				Language: get(rec, "language"), Title: get(rec, "title")}
			for _, a := range strings.Split(get(rec, "alternatives"), "|") {
				if a = strings.TrimSpace(a); a != "" {
					row.Alternatives = append(row.Alternatives, a)
				}
			}
			rows, lines = append(rows, row), append(lines, line)
		}
	default:
		err := jsonLines(r, func(n int, text string) {
			var row ImportRow
			dec := json.NewDecoder(strings.NewReader(text))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&row); err != nil {
				errs = append(errs, RowError{n, "not a JSON object of id, question, answer, language, title, alternatives: " + err.Error()})
				return
			}
			rows, lines = append(rows, row), append(lines, n)
		})
		if err != nil {
			errs = append(errs, RowError{len(lines) + 1, err.Error()})
		}
	}
	seen := map[[2]string]int{}
	entries := make([]Entry, 0, len(rows))
	for i, row := range rows {
		line := lines[i]
		lang := row.Language
		if lang == "" {
			lang = defaultLanguage
		}
		var bad []string
		for name, v := range map[string]string{"id": row.ID, "question": row.Question, "answer": row.Answer} {
			if strings.TrimSpace(v) == "" {
				bad = append(bad, name+" is empty")
			}
		}
		for _, v := range append([]string{row.ID, row.Question, row.Answer, row.Title, lang}, row.Alternatives...) {
			if !utf8.ValidString(v) {
				bad = append(bad, "text is not valid UTF-8")
			} else if len(v) > maxImportField {
				bad = append(bad, fmt.Sprintf("a field is longer than %d bytes", maxImportField))
			}
		}
		if len(lang) > 16 {
			bad = append(bad, fmt.Sprintf("language %q is not a language code", lang))
		}
		k := [2]string{row.ID, lang}
		if prev, dup := seen[k]; dup {
			bad = append(bad, fmt.Sprintf("id %q (%s) is also on line %d", row.ID, lang, prev))
		}
		seen[k] = line
		if len(bad) > 0 {
			slices.Sort(bad)
			errs = append(errs, RowError{line, strings.Join(slices.Compact(bad), "; ")})
			continue
		}
		title := row.Title
		if title == "" {
			title = row.Question
		}
		entries = append(entries, Entry{Key: row.ID, Language: lang, Title: title, Question: row.Question,
			Alternates: row.Alternatives, Answer: row.Answer})
	}
	slices.SortFunc(errs, func(a, b RowError) int { return a.Line - b.Line })
	return entries, errs
}

// EvalQuery is one line of an evaluation file: {"query", "relevant": [ids]}; an empty
// relevant list marks a question the knowledge does not cover.
type EvalQuery struct {
	Query    string   `json:"query"`
	Relevant []string `json:"relevant"`
	Language string   `json:"language"`
}

// EvalResult is retrieval quality over a set of queries.
type EvalResult struct {
	Mode        string  `json:"mode"`
	Queries     int     `json:"queries"`
	RecallAt1   float64 `json:"recall@1"`
	RecallAt5   float64 `json:"recall@5"`
	MRRAt10     float64 `json:"mrr@10"`
	NDCGAt10    float64 `json:"ndcg@10"`
	RefusalRate float64 `json:"refusal_rate"`          // share of queries the bot would not answer
	AnswerRate  float64 `json:"answer_rate,omitempty"` // share of covered queries (with relevant ids) the bot answers
	WrongAnswer float64 `json:"wrong_answer_rate,omitempty"`
	P50ms       float64 `json:"search_p50_ms"`
	P99ms       float64 `json:"search_p99_ms"`
	// ByLanguage is the same per query language, when there are several.
	ByLanguage map[string]EvalResult `json:"by_language,omitempty"`
}

// Evaluate runs every query through the store's search and answer, as the bot would, and
// measures the ranking against the relevant ids (keys), over all queries and per language.
// progress, if set, is called now and then with the number done.
func (s *Store) Evaluate(ctx context.Context, queries []EvalQuery, progress func(done int)) (EvalResult, error) {
	all := &evalAcc{}
	byLang := map[string]*evalAcc{}
	for i, q := range queries {
		t0 := time.Now()
		hits, err := s.Search(ctx, q.Query, q.Language, 10)
		ms := float64(time.Since(t0).Microseconds()) / 1000
		if err != nil {
			return EvalResult{}, err
		}
		a, err := s.Answer(ctx, q.Query, q.Language)
		if err != nil {
			return EvalResult{}, err
		}
		acc := byLang[q.Language]
		if acc == nil {
			acc = &evalAcc{}
			byLang[q.Language] = acc
		}
		for _, x := range []*evalAcc{all, acc} {
			x.add(q, hits, a, ms)
		}
		if progress != nil && (i+1)%50 == 0 {
			progress(i + 1)
		}
	}
	r := all.result(s.opts.Mode)
	if len(byLang) > 1 {
		r.ByLanguage = map[string]EvalResult{}
		for l, x := range byLang {
			r.ByLanguage[l] = x.result(s.opts.Mode)
		}
	}
	return r, nil
}

// evalAcc sums the measures of queries.
type evalAcc struct {
	r       EvalResult
	covered int
	lat     []float64
}

func (x *evalAcc) add(q EvalQuery, hits []hit, a Answer, ms float64) {
	r := &x.r
	r.Queries++
	x.lat = append(x.lat, ms)
	if !a.Found {
		r.RefusalRate++
	}
	if len(q.Relevant) == 0 {
		return
	}
	x.covered++
	if a.Found {
		r.AnswerRate++
		if !slices.Contains(q.Relevant, a.Source.Key) {
			r.WrongAnswer++
		}
	}
	var dcg, idcg float64
	for rank, h := range hits {
		if !slices.Contains(q.Relevant, h.entry.Key) {
			continue
		}
		if rank == 0 {
			r.RecallAt1++
		}
		if rank < 5 && dcg == 0 {
			r.RecallAt5++
		}
		if dcg == 0 {
			r.MRRAt10 += 1 / float64(rank+1)
		}
		dcg += 1 / math.Log2(float64(rank+2))
	}
	for j := range min(len(q.Relevant), 10) {
		idcg += 1 / math.Log2(float64(j+2))
	}
	if idcg > 0 {
		r.NDCGAt10 += dcg / idcg
	}
}

func (x *evalAcc) result(mode string) EvalResult {
	r := x.r
	r.Mode = mode
	if x.covered > 0 {
		for _, m := range []*float64{&r.RecallAt1, &r.RecallAt5, &r.MRRAt10, &r.NDCGAt10, &r.WrongAnswer, &r.AnswerRate} {
			*m = round4(*m / float64(x.covered))
		}
	}
	if r.Queries > 0 {
		r.RefusalRate = round4(r.RefusalRate / float64(r.Queries))
	}
	lat := slices.Clone(x.lat)
	slices.Sort(lat)
	if len(lat) > 0 {
		r.P50ms, r.P99ms = round4(lat[len(lat)/2]), round4(lat[min(len(lat)-1, len(lat)*99/100)])
	}
	return r
}

func round4(x float64) float64 { return math.Round(x*10000) / 10000 }

// ReadEvalQueries reads an evaluation file, one JSON object a line; errors name the line.
func ReadEvalQueries(r io.Reader) ([]EvalQuery, error) {
	var out []EvalQuery
	var bad error
	err := jsonLines(r, func(n int, text string) {
		var q EvalQuery
		if err := json.Unmarshal([]byte(text), &q); (err != nil || q.Query == "") && bad == nil {
			bad = fmt.Errorf("line %d: want {\"query\": …, \"relevant\": [ids]}: %v", n, err)
		}
		out = append(out, q)
	})
	if bad != nil {
		return nil, bad
	}
	return out, err
}

// jsonLines calls line for each non-blank line of r (trimmed), with its number from 1.
func jsonLines(r io.Reader, line func(n int, text string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxImportLine)
	for n := 1; sc.Scan(); n++ {
		if text := strings.TrimSpace(sc.Text()); text != "" {
			line(n, text)
		}
	}
	return sc.Err()
}

// SplitQueries keeps the "dev" or "test" half of queries ("all" keeps them all). The halves are
// fixed by a hash of each query's text, so they stay the same as the file grows.
func SplitQueries(queries []EvalQuery, split string) ([]EvalQuery, error) {
	if split == "" || split == "all" {
		return queries, nil
	}
	if split != "dev" && split != "test" {
		return nil, fmt.Errorf("split %q: want dev, test or all", split)
	}
	var out []EvalQuery
	for _, q := range queries {
		h := fnv.New32a()
		h.Write([]byte(q.Query))
		if (h.Sum32()%2 == 0) == (split == "dev") {
			out = append(out, q)
		}
	}
	return out, nil
}
