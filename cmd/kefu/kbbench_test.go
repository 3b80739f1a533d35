package main

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestFAQGen: kefu kb bench's FAQ is the same for the same seed (a kept schema is searched
// again with queries made from it), and looks like an FAQ: both languages, answers of 50 to
// 300 characters, one to three alternates.
func TestFAQGen(t *testing.T) {
	t.Parallel()
	generate := func() ([]string, *faqGen) {
		g, err := newFAQGen(7)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range g.entries(3000) {
			out = append(out, r.ID+"|"+r.Language+"|"+r.Question+"|"+strings.Join(r.Alternatives, "/")+"|"+r.Answer)
		}
		return out, g
	}
	a, _ := generate()
	b, g := generate()
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two generators of one seed made different entries")
	}
	langs := map[string]int{}
	for _, r := range g.entries(3000) {
		langs[r.Language]++
		if !strings.Contains(r.ID, "#") { // the demo's own entries
			continue
		}
		if n := utf8.RuneCountInString(r.Answer); n < 50 || n > 300 {
			t.Errorf("%s: answer of %d characters", r.ID, n)
		}
		if n := len(r.Alternatives); n < 1 || n > 3 {
			t.Errorf("%s: %d alternates", r.ID, n)
		}
	}
	if langs["zh"] < 1000 || langs["en"] < 1000 {
		t.Errorf("languages %v", langs)
	}
}
