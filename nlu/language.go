package nlu

import (
	"strings"
	"sync"
	"unicode"

	"github.com/pemistahl/lingua-go"
	"golang.org/x/text/unicode/norm"
)

// DefaultLanguage is the language assumed when a message gives no reliable sign of its own:
// empty text, digits, emoji, letters of a script no supported language uses, or a word as short
// and as widely shared as "ok".
const DefaultLanguage = "en"

// Leads a language other than DefaultLanguage needs over it in lingua's confidence (0 to 1)
// before it is believed. One word is where lingua errs most: "ok" reads as Indonesian, "order"
// as German, "hello" as Italian; "Danke", "Gracias" and "Bonjour" lead by more than 0.6.
const (
	leadOneWord = 0.5
	leadWords   = 0.1
)

// Weights of one letter when scripts compete in a mixed message. A customer who types any
// Chinese, Japanese or Korean is almost surely writing in it, and one of those characters
// carries about a word, so "我的order到哪了" and "iPhone 15 屏幕坏了" are Chinese. Other
// non-Latin scripts outweigh Latin letters, which every language borrows for product names,
// order numbers and links.
const (
	weightCJK   = 6
	weightOther = 2
	weightLatin = 1
)

// Detector tells the language of a customer message as an ISO 639-1 code: en, zh, ja, ko, es,
// fr, de, pt, it, ru, ar, vi, th or id. It is safe for concurrent use.
//
// Script decides first, because customer messages are short and script is certain where
// statistics are not: Han without kana is Chinese (so is Japanese written only in kanji), kana
// is Japanese, Hangul Korean, Thai script Thai and Arabic script Arabic (Persian and Urdu
// too). Latin text with letters only Vietnamese uses (ả, ơ, ư,
// đ…) in half its words or more is Vietnamese. Other Latin text, and Cyrillic text, goes to
// lingua's n-gram models, restricted to the supported languages of that script and biased
// towards DefaultLanguage when it is unsure (see Detect).
type Detector struct {
	lingua   lingua.LanguageDetector
	latin    []languageCandidate
	cyrillic []languageCandidate
}

// languageCandidate is a language lingua may choose and the code Detect returns for it.
type languageCandidate struct {
	lang lingua.Language
	code string
}

// NewDetector builds a Detector, loading lingua's high-accuracy models for the languages told
// apart by statistics. The first time in a process that takes 2 to 4 s and leaves 150 MB of
// live heap (resident memory near 350 MB just after); build one Detector and share it. The
// models live in lingua's process-wide cache and are never freed, so later Detectors take
// microseconds and share them. Low-accuracy mode would need 8 MB, but it reads "Where is my
// order?" as German: customer messages are too short for it.
func NewDetector() *Detector {
	latin := []lingua.Language{lingua.English, lingua.Spanish, lingua.French, lingua.German,
		lingua.Portuguese, lingua.Italian, lingua.Vietnamese, lingua.Indonesian}
	cyrillic := []lingua.Language{lingua.Russian}
	return &Detector{
		lingua: lingua.NewLanguageDetectorBuilder().
			FromLanguages(append(latin, cyrillic...)...).
			WithPreloadedLanguageModels().
			Build(),
		latin:    candidatesOf(latin),
		cyrillic: candidatesOf(cyrillic),
	}
}

func candidatesOf(langs []lingua.Language) []languageCandidate {
	c := make([]languageCandidate, len(langs))
	for i, l := range langs {
		c[i] = languageCandidate{l, strings.ToLower(l.IsoCode639_1().String())}
	}
	return c
}

// Detect returns the ISO 639-1 code of the language text is written in, or DefaultLanguage
// when it cannot tell. A language other than DefaultLanguage must lead it in lingua's
// confidence by 0.5 in a one-word message and by 0.1 in a longer one: sending an English
// speaker's "ok" to an Indonesian agent costs more than answering "Hola" in English.
func (d *Detector) Detect(text string) string {
	var s scriptCounts
	s.count(text)
	switch s.dominant() {
	case scriptCJK:
		if s.kana > 0 {
			return "ja"
		}
		return "zh"
	case scriptHangul:
		return "ko"
	case scriptThai:
		return "th"
	case scriptArabic:
		return "ar"
	case scriptCyrillic:
		return d.choose(text, d.cyrillic, 0)
	case scriptLatin:
		text = norm.NFC.String(text) // "ả" typed as a + combining hook reads as "ả"
		if vietnamese(text) {
			return "vi"
		}
		if plainEnglish(text) {
			return "en"
		}
		lead := leadWords
		if s.words < 2 {
			lead = leadOneWord
		}
		return d.choose(text, d.latin, lead)
	default:
		return DefaultLanguage
	}
}

// choose returns the candidate lingua finds likeliest for text. When DefaultLanguage is a
// candidate, another language must lead it by lead; when lingua has no opinion, the answer is
// DefaultLanguage if it is a candidate and the first candidate otherwise.
func (d *Detector) choose(text string, candidates []languageCandidate, lead float64) string {
	fallback := candidates[0].code
	if len(candidates) == 1 {
		return fallback // the script decided: no statistics needed
	}
	var best, def lingua.ConfidenceValue
	for _, v := range d.lingua.ComputeLanguageConfidenceValues(text) { // likeliest first
		c, ok := findCandidate(candidates, v.Language())
		switch {
		case !ok:
		case c.code == DefaultLanguage:
			fallback, def = c.code, v
			if best == nil {
				best = v
			}
		case best == nil:
			best = v
		}
	}
	if best == nil || best.Value() == 0 {
		return fallback
	}
	if def != nil && best.Language() != def.Language() && best.Value()-def.Value() < lead {
		return DefaultLanguage
	}
	c, _ := findCandidate(candidates, best.Language())
	return c.code
}

func findCandidate(candidates []languageCandidate, l lingua.Language) (languageCandidate, bool) {
	for _, c := range candidates {
		if c.lang == l {
			return c, true
		}
	}
	return languageCandidate{}, false
}

// englishOnly are frequent English words that are no word of the other languages written in
// Latin script that Detect tells apart (es, fr, de, pt, it, id, and Vietnamese typed without
// its marks): "the", "my", "can", "it" and "do" are left out for that reason ("toi can biet",
// "do" in Portuguese), "was", "will" and "still" for German.
var englishOnly = map[string]bool{
	"is": true, "are": true, "you": true, "your": true, "where": true, "what": true, "when": true,
	"why": true, "how": true, "which": true, "who": true, "could": true, "would": true, "should": true,
	"does": true, "did": true, "have": true, "this": true, "that": true, "with": true, "from": true,
	"about": true, "please": true, "thanks": true, "thank": true, "not": true, "of": true, "for": true,
	"and": true, "get": true, "want": true, "need": true, "there": true, "they": true, "we": true,
	"our": true, "if": true, "i'm": true, "don't": true, "it's": true, "can't": true, "didn't": true,
	"doesn't": true, "isn't": true, "haven't": true, "yet": true, "but": true, "what's": true,
}

// plainEnglish reports whether text, all ASCII, is English beyond doubt: two words or more
// that only English has, and at least one in five of its words. lingua would say English too
// (it is DefaultLanguage, which other languages must lead); this saves its n-gram lookups,
// ≈0.1 ms of a turn, on most English messages.
func plainEnglish(text string) bool {
	words, marked := 0, 0
	for w := range strings.FieldsFuncSeq(text, func(r rune) bool { return !unicode.IsLetter(r) && r != '\'' }) {
		for _, r := range w {
			if r >= 0x80 {
				return false
			}
		}
		words++
		if englishOnly[strings.ToLower(strings.Trim(w, "'"))] {
			marked++
		}
	}
	return marked >= 2 && 5*marked >= words
}

// vietnamese reports whether half the words of NFC text or more hold a letter that, among the
// supported languages, only Vietnamese uses: ă, ơ, ư, đ and the letters with a tone mark below
// or a hook, or with both a vowel mark and a tone mark (U+1EA0 to U+1EF9). lingua's own rule
// leaves out ả, ẹ, ọ, ă and đ, which other languages it knows share, and read "cảm ơn" as
// Spanish.
func vietnamese(text string) bool {
	var words, marked int
	inWord, wordMarked := false, false
	endWord := func() {
		if inWord {
			words++
			if wordMarked {
				marked++
			}
		}
		inWord, wordMarked = false, false
	}
	for _, r := range text {
		if !unicode.IsLetter(r) {
			endWord()
			continue
		}
		inWord = true
		wordMarked = wordMarked || vietnameseLetter(r)
	}
	endWord()
	return marked > 0 && marked*2 >= words
}

func vietnameseLetter(r rune) bool {
	switch r {
	case 'ă', 'Ă', 'ơ', 'Ơ', 'ư', 'Ư', 'đ', 'Đ':
		return true
	}
	return r >= 0x1EA0 && r <= 0x1EF9
}

// script is a writing system Detect tells apart.
type script int

const (
	scriptNone script = iota
	scriptCJK         // Han and kana
	scriptHangul
	scriptThai
	scriptArabic
	scriptCyrillic
	scriptLatin
)

// scriptCounts counts the letters of a message by script, and its words.
type scriptCounts struct {
	han, kana, hangul, thai, arabic, cyrillic, latin int
	words                                            int // runs of letters
}

func (s *scriptCounts) count(text string) {
	inWord := false
	for _, r := range text {
		letter := unicode.IsLetter(r)
		if letter && !inWord {
			s.words++
		}
		inWord = letter
		if !letter {
			continue
		}
		switch {
		case r < 0x80 || unicode.Is(unicode.Latin, r):
			s.latin++
		case unicode.Is(unicode.Han, r):
			s.han++
		case unicode.In(r, unicode.Hiragana, unicode.Katakana):
			s.kana++
		case unicode.Is(unicode.Hangul, r):
			s.hangul++
		case unicode.Is(unicode.Thai, r):
			s.thai++
		case unicode.Is(unicode.Arabic, r):
			s.arabic++
		case unicode.Is(unicode.Cyrillic, r):
			s.cyrillic++
		}
	}
}

// dominant returns the script with the most weighted letters; ties go to the earlier script in
// the list, so to the non-Latin one.
func (s *scriptCounts) dominant() script {
	best, bestWeight := scriptNone, 0
	for _, c := range []struct {
		script script
		weight int
	}{
		{scriptCJK, weightCJK * (s.han + s.kana)},
		{scriptHangul, weightCJK * s.hangul},
		{scriptThai, weightOther * s.thai},
		{scriptArabic, weightOther * s.arabic},
		{scriptCyrillic, weightOther * s.cyrillic},
		{scriptLatin, weightLatin * s.latin},
	} {
		if c.weight > bestWeight {
			best, bestWeight = c.script, c.weight
		}
	}
	return best
}

// sharedDetector is the Detector behind DetectLanguage, built on its first call. It is the
// package's one piece of state, kept for callers that have no Detector to hand
// (Classifier.Understand): lingua caches its models process-wide whatever we do, so it adds no
// memory.
var sharedDetector = sync.OnceValue(NewDetector) //nolint:gochecknoglobals // immutable once built

// DetectLanguage returns the ISO 639-1 code of the language text is written in, or
// DefaultLanguage when it cannot tell, as Detector.Detect does. Its first call builds a shared
// Detector, which takes about 2 s: call it once at startup to pay that before the first
// customer does.
func DetectLanguage(text string) string {
	return sharedDetector().Detect(text)
}
