package nlu

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
)

// CheckGolden compares the tokenizer with the golden vectors that training/ writes next to a
// model (tokenizer_golden.jsonl): the pieces, the ids at maxLen (the model's max_len) and,
// where a vector has buckets, the n-gram ids. It returns how many vectors it read and every
// difference, each naming the text. Go must match the trainer, never the reverse.
func (t *Tokenizer) CheckGolden(path string, maxLen int) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var errs []error
	n := 0
	for sc.Scan() {
		var g struct {
			Text    string   `json:"text"`
			Tokens  []string `json:"tokens"`
			IDs     []int64  `json:"ids"`
			Buckets int      `json:"buckets"`
			NGrams  []int64  `json:"ngrams"`
		}
		if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
			return n, fmt.Errorf("%s:%d: %w", path, n+1, err)
		}
		n++
		if got := t.Tokenize(g.Text); !slices.Equal(got, g.Tokens) && len(got)+len(g.Tokens) > 0 {
			errs = append(errs, fmt.Errorf("Tokenize(%q) = %q, trainer %q", g.Text, got, g.Tokens))
		}
		if got := t.Encode(g.Text, maxLen); !slices.Equal(got, g.IDs) {
			errs = append(errs, fmt.Errorf("Encode(%q) = %v, trainer %v", g.Text, got, g.IDs))
		}
		if g.Buckets > 0 {
			if got := t.NGrams(g.Text, g.Buckets); !slices.Equal(got, g.NGrams) && len(got)+len(g.NGrams) > 0 {
				errs = append(errs, fmt.Errorf("NGrams(%q, %d) = %v, trainer %v", g.Text, g.Buckets, got, g.NGrams))
			}
		}
	}
	if err := sc.Err(); err != nil {
		return n, fmt.Errorf("%s: %w", path, err)
	}
	return n, errors.Join(errs...)
}
