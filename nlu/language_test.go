package nlu_test

import (
	"sync"
	"testing"

	"github.com/kefu-dev/kefu/nlu"
)

// languageTests are customer messages as they arrive: short, mixed, sometimes only an emoji.
var languageTests = []struct{ name, in, want string }{
	{"Chinese", "我的订单到哪了？", "zh"},
	{"ChineseShort", "我要退款", "zh"},
	{"ChineseGreeting", "你好", "zh"},
	{"MixedChineseEnglish", "我的order到哪了", "zh"},
	{"MixedProductName", "iPhone 15 Pro 屏幕坏了", "zh"},
	{"MixedEnglishFirst", "refund 怎么申请", "zh"},
	{"MixedFullWidth", "Hi，我想退货", "zh"},
	{"KanjiOnlyReadsAsChinese", "注文確認", "zh"}, // no kana: script cannot tell

	{"English", "Where is my order?", "en"},
	{"EnglishRefund", "I want a refund", "en"},
	{"EnglishAddress", "Can I change my delivery address?", "en"},
	{"EnglishNotReceived", "order not received", "en"},
	{"EnglishThanks", "thank you", "en"},
	{"EnglishHello", "hello", "en"},
	{"EnglishOneWord", "refund", "en"},
	{"EnglishOrderNumber", "order 12345", "en"},
	{"EnglishWithChineseWord", "Please refund me, the 快递 never came, I waited two weeks", "en"},

	{"Japanese", "注文した商品がまだ届きません", "ja"},
	{"JapaneseKanaOnly", "ありがとう", "ja"},
	{"JapaneseMixed", "iPhoneの画面が割れた", "ja"},

	{"Korean", "주문한 상품이 아직 안 왔어요", "ko"},
	{"KoreanMixed", "주문 취소 please", "ko"},

	{"Spanish", "¿Dónde está mi pedido?", "es"},
	{"SpanishReturn", "Quiero devolver el producto", "es"},
	{"SpanishThanks", "Gracias", "es"},

	{"French", "Je voudrais un remboursement", "fr"},
	{"FrenchOrder", "Où est ma commande ?", "fr"},
	{"FrenchParcel", "Mon colis n'est pas arrivé", "fr"},
	{"FrenchGreeting", "Bonjour", "fr"},

	{"German", "Wo ist meine Bestellung?", "de"},
	{"GermanCancel", "Ich möchte meine Bestellung stornieren", "de"},
	{"GermanThanks", "Danke", "de"},

	{"Portuguese", "Onde está o meu pedido?", "pt"},
	{"PortugueseNotArrived", "Meu pedido não chegou", "pt"},
	{"PortugueseThanks", "Obrigado", "pt"},

	{"Italian", "Vorrei un rimborso", "it"},
	{"ItalianParcel", "Il pacco non è arrivato", "it"},

	{"Russian", "Где мой заказ?", "ru"},
	{"RussianRefund", "Хочу вернуть деньги", "ru"},
	{"RussianMixed", "Где мой order?", "ru"},

	{"Arabic", "أين طلبي؟", "ar"},
	{"ArabicRefund", "أريد استرداد أموالي", "ar"},

	{"Vietnamese", "Đơn hàng của tôi đâu rồi?", "vi"},
	{"VietnameseRefund", "Tôi muốn hoàn tiền", "vi"},
	{"VietnameseThanks", "cảm ơn", "vi"},
	{"VietnameseDecomposed", "ca\u0309m ơn", "vi"}, // a + combining hook, as some keyboards send it

	{"Thai", "สินค้าของฉันอยู่ที่ไหน", "th"},
	{"ThaiRefund", "ขอคืนเงินค่ะ", "th"},
	{"ThaiMixed", "iPhone 15 จอแตก", "th"},

	{"Indonesian", "Pesanan saya belum sampai", "id"},
	{"IndonesianCancel", "Saya ingin membatalkan pesanan", "id"},
	{"IndonesianThanks", "terima kasih", "id"},

	{"Empty", "", nlu.DefaultLanguage},
	{"Spaces", "  \n", nlu.DefaultLanguage},
	{"Digits", "123", nlu.DefaultLanguage},
	{"OrderID", "A-1029", nlu.DefaultLanguage},
	{"Emoji", "👍", nlu.DefaultLanguage},
	{"Punctuation", "???", nlu.DefaultLanguage},
	{"OK", "ok", nlu.DefaultLanguage},
	{"Hi", "hi", nlu.DefaultLanguage},
	{"UnsupportedScript", "Ευχαριστώ", nlu.DefaultLanguage},
}

func TestDetectLanguage(t *testing.T) {
	t.Parallel()
	for _, tt := range languageTests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := nlu.DetectLanguage(tt.in); got != tt.want {
				t.Errorf("DetectLanguage(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestDetectorConcurrentLanguage(t *testing.T) {
	t.Parallel()
	d := nlu.NewDetector()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for _, tt := range languageTests {
				if got := d.Detect(tt.in); got != tt.want {
					t.Errorf("Detect(%q) = %q, want %q", tt.in, got, tt.want) // not the test goroutine
				}
				if got := nlu.DetectLanguage(tt.in); got != tt.want {
					t.Errorf("DetectLanguage(%q) = %q, want %q", tt.in, got, tt.want)
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkDetectLanguage(b *testing.B) {
	for _, bb := range []struct{ name, in string }{
		{"Chinese", "我的订单到哪了？"},               // script rule
		{"MixedChineseEnglish", "我的order到哪了"}, // script rule
		{"English", "Where is my order?"},     // plain English: no lingua
		{"EnglishShort", "is shipping free"},  // lingua
		{"Spanish", "¿Dónde está mi pedido?"},
		{"OneWord", "ok"},
		{"Emoji", "👍"},
	} {
		b.Run(bb.name, func(b *testing.B) {
			nlu.DetectLanguage("") // build the shared Detector outside the timing
			b.ReportAllocs()
			for b.Loop() {
				nlu.DetectLanguage(bb.in)
			}
		})
	}
}
