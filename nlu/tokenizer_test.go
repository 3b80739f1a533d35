package nlu_test

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kefu-dev/kefu/nlu"
)

const modelDir = "../models/intent"

func mustTokenizer(t testing.TB) *nlu.Tokenizer {
	t.Helper()
	tok, err := nlu.LoadVocab(modelDir+"/vocab.txt", true, true)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestTokenizerGolden checks the Go tokenizer against the trainer's output, which
// training/train_intent.py writes next to the model. Go must match the trainer, never the
// reverse, so there is no -update.
func TestTokenizerGolden(t *testing.T) {
	t.Parallel()
	n, err := mustTokenizer(t).CheckGolden(modelDir+"/tokenizer_golden.jsonl", 64)
	if err != nil {
		t.Error(err)
	}
	if n < 20 {
		t.Fatalf("only %d golden vectors", n)
	}
}

func TestTokenizerRules(t *testing.T) {
	t.Parallel()
	tok := mustTokenizer(t)
	tests := []struct{ in, want string }{
		{"你好", "你|好"},
		{"Hello, WORLD!", "hello|,|world|!"},
		{"ＡＢＣ，", "abc|,"},
	}
	for _, tt := range tests {
		got := tok.Tokenize(tt.in)
		var joined string
		for i, p := range got {
			if i > 0 {
				joined += "|"
			}
			joined += p
		}
		// Words split into pieces differently as the vocabulary changes: compare whole words.
		if joined = strings.ReplaceAll(joined, "|##", ""); joined != tt.want {
			t.Errorf("Tokenize(%q) = %q, want %q", tt.in, joined, tt.want)
		}
	}
}

func FuzzEncode(f *testing.F) {
	tok := mustTokenizer(f)
	for _, s := range []string{"我想退货", "Where is A-1029?", "ＡＢＣ，ok！", "🙂", "", "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids := tok.Encode(s, 64)
		if len(ids) < 2 || len(ids) > 64 || !slices.Equal(ids, tok.Encode(s, 64)) {
			t.Fatalf("Encode(%q) = %v: too long, too short or not deterministic", s, ids)
		}
		for _, id := range ids {
			if id < 0 || int(id) >= tok.VocabSize() {
				t.Fatalf("Encode(%q) has id %d outside the vocabulary", s, id)
			}
		}
		if utf8.ValidString(s) {
			_ = tok.Tokenize(s)
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	tok := mustTokenizer(b)
	msgs := []string{"我的订单到哪了，怎么还没收到货", "where is my order, it has not arrived yet", "退款多久到账？", "can i change the delivery address after ordering"}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tok.Encode(msgs[i%len(msgs)], 64)
		i++
	}
}
