package nlu

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Special pieces of a BERT vocabulary.
const (
	padToken = "[PAD]"
	unkToken = "[UNK]"
	clsToken = "[CLS]"
	sepToken = "[SEP]"
	maxWord  = 100 // a longer word is [UNK], as in BERT
)

// Tokenizer is a BERT WordPiece tokenizer. Its output is the trainer's
// (training/kefu_tokenizer.py), which the tests check on golden vectors the trainer writes:
// NFKC, control characters dropped, each CJK ideograph a word of its own, lower case without
// accents, punctuation split, then greedy longest-match-first WordPiece with ## continuations.
type Tokenizer struct {
	vocab     []string
	ids       map[string]int64
	lowercase bool
	nfkc      bool
	pad, unk  int64
	cls, sep  int64
}

// LoadVocab reads a vocab.txt (one piece a line, the line number is the id).
func LoadVocab(path string, lowercase, nfkc bool) (*Tokenizer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("nlu: vocabulary: %w", err)
	}
	defer f.Close()
	var vocab []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		vocab = append(vocab, strings.TrimRight(sc.Text(), "\r"))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("nlu: vocabulary %s: %w", path, err)
	}
	return NewTokenizer(vocab, lowercase, nfkc)
}

// NewTokenizer builds a tokenizer from a vocabulary that holds [PAD], [UNK], [CLS] and [SEP].
func NewTokenizer(vocab []string, lowercase, nfkc bool) (*Tokenizer, error) {
	t := &Tokenizer{vocab: vocab, ids: make(map[string]int64, len(vocab)), lowercase: lowercase, nfkc: nfkc}
	for i, p := range vocab {
		if _, dup := t.ids[p]; !dup {
			t.ids[p] = int64(i)
		}
	}
	for _, s := range []struct {
		name string
		id   *int64
	}{{padToken, &t.pad}, {unkToken, &t.unk}, {clsToken, &t.cls}, {sepToken, &t.sep}} {
		id, ok := t.ids[s.name]
		if !ok {
			return nil, fmt.Errorf("nlu: vocabulary lacks %s", s.name)
		}
		*s.id = id
	}
	return t, nil
}

// VocabSize is the number of pieces.
func (t *Tokenizer) VocabSize() int { return len(t.vocab) }

// Tokenize returns the WordPiece pieces of text, without [CLS] and [SEP].
func (t *Tokenizer) Tokenize(text string) []string {
	var out []string
	for _, w := range t.basic(text) {
		out = append(out, t.wordPieces(w)...)
	}
	return out
}

// Encode returns [CLS] pieces [SEP] as ids, at most maxLen of them.
func (t *Tokenizer) Encode(text string, maxLen int) []int64 {
	if maxLen < 2 {
		maxLen = 2
	}
	ids := []int64{t.cls}
	for _, w := range t.basic(text) {
		for _, p := range t.wordPieces(w) {
			if len(ids) == maxLen-1 {
				return append(ids, t.sep)
			}
			ids = append(ids, t.ids[p])
		}
	}
	return append(ids, t.sep)
}

func (t *Tokenizer) basic(text string) []string {
	if t.nfkc {
		text = norm.NFKC.String(text)
	}
	var b strings.Builder
	b.Grow(len(text) + 8)
	for _, r := range text {
		switch {
		case r == 0 || r == unicode.ReplacementChar || isControl(r):
		case isWhitespace(r):
			b.WriteByte(' ')
		case isCJK(r):
			b.WriteByte(' ')
			b.WriteRune(r)
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	text = b.String()
	if t.lowercase {
		text = stripAccents(strings.ToLower(text))
	}
	var words []string
	for _, w := range strings.Fields(text) {
		start := 0
		for i, r := range w {
			if isPunct(r) {
				if i > start {
					words = append(words, w[start:i])
				}
				words = append(words, string(r))
				start = i + len(string(r))
			}
		}
		if start < len(w) {
			words = append(words, w[start:])
		}
	}
	return words
}

func (t *Tokenizer) wordPieces(word string) []string {
	runes := []rune(word)
	if len(runes) > maxWord {
		return []string{unkToken}
	}
	var pieces []string
	for start := 0; start < len(runes); {
		end := len(runes)
		cur := ""
		for start < end {
			sub := string(runes[start:end])
			if start > 0 {
				sub = "##" + sub
			}
			if _, ok := t.ids[sub]; ok {
				cur = sub
				break
			}
			end--
		}
		if cur == "" {
			return []string{unkToken}
		}
		pieces = append(pieces, cur)
		start = end
	}
	return pieces
}

func stripAccents(s string) string {
	d := norm.NFD.String(s)
	var b strings.Builder
	b.Grow(len(d))
	for _, r := range d {
		if !unicode.Is(unicode.Mn, r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isCJK(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) || (r >= 0x3400 && r <= 0x4DBF) ||
		(r >= 0x20000 && r <= 0x2A6DF) || (r >= 0x2A700 && r <= 0x2B73F) ||
		(r >= 0x2B740 && r <= 0x2B81F) || (r >= 0x2B820 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) || (r >= 0x2F800 && r <= 0x2FA1F)
}

func isWhitespace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || unicode.Is(unicode.Zs, r)
}

func isControl(r rune) bool {
	if r == '\t' || r == '\n' || r == '\r' {
		return false
	}
	if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs) {
		return true
	}
	// Unassigned code points (Cn) belong to no category.
	return !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z, unicode.C)
}

func isPunct(r rune) bool {
	if (r >= 33 && r <= 47) || (r >= 58 && r <= 64) || (r >= 91 && r <= 96) || (r >= 123 && r <= 126) {
		return true
	}
	return unicode.IsPunct(r)
}
