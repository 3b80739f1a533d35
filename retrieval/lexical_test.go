package retrieval

import (
	"slices"
	"testing"
)

func TestTerms(t *testing.T) {
	t.Parallel()
	tests := []struct {
		text string
		want []string // must all be among the terms
		not  []string // must not be
	}{
		{"退款申请多久到账？", []string{"退款", "申请", "到账"}, []string{"？"}},
		{"Shipping refunds, shipped!", []string{"ship", "refund"}, []string{"shipping", ","}},
		{"我的order什么时候到", []string{"order", "时候"}, []string{"我", "的"}},
		{"Café No.5 SO20261127001", []string{"cafe", "no", "so20261127001"}, nil},
		{"ＡＢＣ１２３", []string{"abc123"}, nil}, // full-width folds
	}
	for _, tt := range tests {
		got := Terms(tt.text)
		for _, w := range tt.want {
			if !slices.Contains(got, w) {
				t.Errorf("Terms(%q) = %q, want %q among them", tt.text, got, w)
			}
		}
		for _, w := range tt.not {
			if slices.Contains(got, w) {
				t.Errorf("Terms(%q) = %q, want no %q", tt.text, got, w)
			}
		}
	}
	// Character bigrams keep a match when segmentation differs: 发票 is a term of 开发票.
	if got := Terms("开发票"); !slices.Contains(got, "发票") {
		t.Errorf("Terms(开发票) = %q, want the bigram 发票", got)
	}
}

func FuzzTerms(f *testing.F) {
	for _, s := range []string{"退款多久到账", "where's my order #123", "ＡＢＣ", "\xff\xfe", "é́́"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, term := range Terms(s) {
			if term == "" || stopTerms[term] {
				t.Fatalf("Terms(%q) gave %q", s, term)
			}
		}
	})
}

func TestLexicalReadyAfterWarm(t *testing.T) {
	WarmLexical()
	if !LexicalReady() {
		t.Fatal("LexicalReady is false after WarmLexical returned")
	}
	if got := Terms("退款申请"); !slices.Contains(got, "退款") {
		t.Fatalf("Terms after the warm-up = %v", got)
	}
}
