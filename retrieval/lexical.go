package retrieval

import (
	"strings"
	"sync"
	"sync/atomic"
	"unicode"

	"github.com/go-ego/gse"
	"golang.org/x/text/unicode/norm"
)

// Lexical search is BM25 over terms PostgreSQL stores per entry (retrieval_posting). Chinese
// has no spaces, and PostgreSQL's full-text search does not split it, so terms are made here:
// Chinese runs are segmented by gse in search mode (words and the shorter words inside them:
// 退款申请 → 退款, 申请, 退款申请) plus their character bigrams, which keep a match when the
// segmenter and the customer disagree or a character is mistyped; Latin words are folded to
// lower case, stripped of accents and of a plural or verb ending; numbers stay whole.

var segmenter = sync.OnceValue(func() *gse.Segmenter {
	seg, err := gse.NewEmbed("zh_s")
	if err != nil { // the dictionary is embedded in the binary: this cannot fail at run time
		panic("retrieval: gse dictionary: " + err.Error())
	}
	return &seg
})

// WarmLexical loads the Chinese dictionary (about a second), so no customer waits for it.
func WarmLexical() {
	segmenter()
	lexicalWarm.Store(true)
}

var lexicalWarm atomic.Bool

// LexicalReady reports whether WarmLexical has finished: until then a search with Chinese in
// it waits for the dictionary, and an instance should not be sent customers (/readyz).
func LexicalReady() bool { return lexicalWarm.Load() }

// stopTerms carry no meaning for search, in either language.
var stopTerms = map[string]bool{
	"the": true, "a": true, "an": true, "is": true, "are": true, "to": true, "of": true, "and": true, "or": true,
	"i": true, "my": true, "me": true, "you": true, "your": true, "it": true, "in": true, "on": true, "for": true,
	"do": true, "does": true, "can": true, "how": true, "what": true, "when": true, "be": true, "with": true,
	"的": true, "了": true, "吗": true, "呢": true, "吧": true, "啊": true, "我": true, "你": true, "是": true,
	"在": true, "有": true, "和": true, "就": true, "都": true, "么": true, "怎么": true, "什么": true, "请问": true,
}

// Terms splits text into search terms, with repeats (their counts are BM25's tf).
func Terms(text string) []string {
	text = strings.ToLower(norm.NFKC.String(text))
	var out []string
	add := func(t string) {
		if t != "" && !stopTerms[t] {
			out = append(out, t)
		}
	}
	runes := []rune(text)
	for i := 0; i < len(runes); {
		r := runes[i]
		switch {
		case isHan(r):
			j := i
			for j < len(runes) && isHan(runes[j]) {
				j++
			}
			run := string(runes[i:j])
			for _, w := range segmenter().CutSearch(run, true) {
				add(w)
			}
			for k := i; k+1 < j; k++ {
				add(string(runes[k : k+2]))
			}
			i = j
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			j := i
			for j < len(runes) && (unicode.IsLetter(runes[j]) || unicode.IsDigit(runes[j])) && !isHan(runes[j]) {
				j++
			}
			add(stem(foldAccents(string(runes[i:j]))))
			i = j
		default:
			i++
		}
	}
	return out
}

func isHan(r rune) bool { return unicode.Is(unicode.Han, r) }

// foldAccents drops combining marks: "café" → "cafe".
func foldAccents(s string) string {
	d := norm.NFD.String(s)
	b := make([]rune, 0, len(d))
	for _, r := range d {
		if !unicode.Is(unicode.Mn, r) {
			b = append(b, r)
		}
	}
	return string(b)
}

// stem takes a common English ending off a word ("refunds", "shipping", "shipped" → "ship"
// and "refund"), enough to match the forms customers type; short words stay as they are.
func stem(w string) string {
	if len(w) <= 3 || strings.ContainsFunc(w, unicode.IsDigit) {
		return w
	}
	for _, suf := range []string{"ing", "ed", "es", "s"} {
		if strings.HasSuffix(w, suf) && len(w)-len(suf) >= 3 {
			w = strings.TrimSuffix(w, suf)
			if n := len(w); n >= 2 && w[n-1] == w[n-2] && suf != "s" && !strings.HasSuffix(w, "ss") { // shipp → ship
				w = w[:n-1]
			}
			return w
		}
	}
	return w
}

// termCounts is tf per term.
func termCounts(terms []string) map[string]int {
	tf := make(map[string]int, len(terms))
	for _, t := range terms {
		tf[t]++
	}
	return tf
}
