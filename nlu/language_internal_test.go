package nlu

import (
	"testing"

	"golang.org/x/text/unicode/norm"
)

// TestPlainEnglish: the shortcut takes plain English and nothing else, and wherever it takes
// a message lingua's own answer (as Detect would have asked it) is English too.
func TestPlainEnglish(t *testing.T) {
	t.Parallel()
	english := []string{
		"Where is my order?", "How long does shipping take after I order?", "which courier do you use",
		"Which payment methods do you accept?", "how do i get an invoice for my order", "are you open on weekends",
		"what are your business hours", "How long is the warranty and how do I claim it?", "I'm still waiting for my refund",
		"why did you cancel my order", "I don't want this anymore", "thank you so much for your help",
	}
	for _, s := range english {
		if !plainEnglish(s) {
			t.Errorf("plainEnglish(%q) = false", s)
		}
	}
	notTaken := []string{
		"", "ok", "hi", "refund", "is shipping free", "order not received", "thanks", // too little to be sure: lingua decides
		"what's the return policy", "Can I exchange an item for another size?", "Is gift wrapping available?",
		"Do you ship outside mainland China?", "who pays return shipping", "I forgot my password, what do I do?",
		"My payment failed or I was charged but the order shows unpaid. What should I do?",
		"quiero devolver el producto que compre la semana pasada, where is?", // one English word in five is not enough
		"Wo ist meine Bestellung?", "Ich möchte meine Bestellung stornieren", "Was ist mit meiner Bestellung, will ich wissen",
		"Où est ma commande ?", "Je voudrais un remboursement", "¿Dónde está mi pedido?", "Quiero devolver el producto",
		"Onde está o meu pedido?", "Meu pedido não chegou", "Il pacco non è arrivato", "Vorrei un rimborso",
		"Pesanan saya belum sampai", "Saya ingin membatalkan pesanan", "terima kasih",
		"toi can biet the nao de huy don hang", "cam on ban nhieu", "Đơn hàng của tôi đâu rồi?",
		"café is open where?", // a letter outside ASCII: lingua decides
	}
	for _, s := range notTaken {
		if plainEnglish(s) {
			t.Errorf("plainEnglish(%q) = true", s)
		}
	}
	d := sharedDetector()
	for _, s := range english {
		if got := d.choose(norm.NFC.String(s), d.latin, leadWords); got != "en" {
			t.Errorf("lingua reads %q as %q: the shortcut would change the answer", s, got)
		}
	}
}
