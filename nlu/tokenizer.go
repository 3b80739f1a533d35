package nlu

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

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
	ids       map[string]int64 // piece → id
	cont      map[string]int64 // continuation piece without its ## → id
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
	t := &Tokenizer{vocab: vocab, ids: make(map[string]int64, len(vocab)), cont: make(map[string]int64),
		lowercase: lowercase, nfkc: nfkc}
	for i, p := range vocab {
		if _, dup := t.ids[p]; !dup {
			t.ids[p] = int64(i)
		}
		if rest, ok := strings.CutPrefix(p, "##"); ok && rest != "" {
			if _, dup := t.cont[rest]; !dup {
				t.cont[rest] = int64(i)
			}
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
	var ids []int64
	for _, w := range t.basic(text) {
		ids = t.appendPieces(ids[:0], w)
		for _, id := range ids {
			out = append(out, t.vocab[id])
		}
	}
	return out
}

// Encode returns [CLS] pieces [SEP] as ids, at most maxLen of them.
func (t *Tokenizer) Encode(text string, maxLen int) []int64 {
	maxLen = max(maxLen, 2)
	ids := make([]int64, 1, min(maxLen, 2+len(text)))
	ids[0] = t.cls
	for _, w := range t.basic(text) {
		ids = t.appendPieces(ids, w)
		if len(ids) >= maxLen-1 {
			ids = ids[:maxLen-1]
			break
		}
	}
	return append(ids, t.sep)
}

// isASCII reports whether s has only ASCII bytes: such text needs no Unicode normalisation.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func (t *Tokenizer) basic(text string) []string {
	ascii := isASCII(text)
	if t.nfkc && !ascii {
		text = norm.NFKC.String(text)
	}
	var b strings.Builder
	b.Grow(len(text) + 8)
	for _, r := range text {
		switch {
		case r < utf8.RuneSelf && r > ' ' && r != 0x7f:
			b.WriteByte(byte(r))
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
		text = strings.ToLower(text)
		if !ascii {
			text = stripAccents(text)
		}
	}
	words := make([]string, 0, 16)
	for _, w := range strings.Fields(text) {
		start := 0
		for i, r := range w {
			if isPunct(r) {
				if i > start {
					words = append(words, w[start:i])
				}
				n := utf8.RuneLen(r)
				words = append(words, w[i:i+n])
				start = i + n
			}
		}
		if start < len(w) {
			words = append(words, w[start:])
		}
	}
	return words
}

// appendPieces appends the ids of word's WordPieces: greedy longest match first, word-initial
// pieces from ids and continuations (##…) from cont, so no piece string is built. A word that
// is too long or cannot be covered is one [UNK].
func (t *Tokenizer) appendPieces(dst []int64, word string) []int64 {
	if utf8.RuneCountInString(word) > maxWord {
		return append(dst, t.unk)
	}
	mark := len(dst)
	for start := 0; start < len(word); {
		end := len(word)
		found := false
		for start < end {
			var id int64
			var ok bool
			if start == 0 {
				id, ok = t.ids[word[start:end]]
			} else {
				id, ok = t.cont[word[start:end]]
			}
			if ok {
				dst = append(dst, id)
				found = true
				break
			}
			_, size := utf8.DecodeLastRuneInString(word[start:end])
			end -= size
		}
		if !found {
			return append(dst[:mark], t.unk)
		}
		start = end
	}
	return dst
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

// NGrams returns hashed features of text as ids 1..buckets (0 is padding), at most 256: the
// character n-grams (3 to 5 characters) of every word, with < and > marking the word's ends,
// then every pair of neighbouring words joined by a space. The words are those of the
// WordPiece pre-tokenizer; an id is FNV-1a (32 bit) of the feature's UTF-8 bytes modulo
// buckets, plus one: training/kefu_tokenizer.py's ngram_ids, which the golden vectors check.
func (t *Tokenizer) NGrams(text string, buckets int) []int64 {
	const lo, hi, maxGrams = 3, 5, 256
	if buckets <= 0 {
		return nil
	}
	hash := func(b []byte) int64 {
		h := uint32(2166136261)
		for _, c := range b {
			h ^= uint32(c)
			h *= 16777619
		}
		return 1 + int64(h%uint32(buckets))
	}
	var out []int64
	var buf []byte
	words := t.basic(text)
	for _, w := range words {
		s := make([]rune, 0, len(w)+2)
		s = append(append(append(s, '<'), []rune(w)...), '>')
		for n := lo; n <= hi; n++ {
			for i := 0; i+n <= len(s); i++ {
				buf = buf[:0]
				for _, r := range s[i : i+n] {
					buf = utf8.AppendRune(buf, r)
				}
				if out = append(out, hash(buf)); len(out) == maxGrams {
					return out
				}
			}
		}
	}
	for i := 0; i+1 < len(words); i++ {
		buf = append(append(append(buf[:0], words[i]...), ' '), words[i+1]...)
		if out = append(out, hash(buf)); len(out) == maxGrams {
			return out
		}
	}
	return out
}
