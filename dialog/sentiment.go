package dialog

import (
	"fmt"
	"math"
	"strings"
	"unicode"
)

// Sentiment is how a customer's message sounds. Score runs from -1 (furious) through 0
// (neutral, or no cue at all) to 1 (delighted); Cues are the words and signals that counted,
// with their signed weights, for logs and tests.
type Sentiment struct {
	Score float64
	Cues  []string
}

// ScoreSentiment reads the mood of a message from a lexicon of Chinese and English cues (and
// the strongest words of Spanish, French, German, Japanese and Korean): anger and
// dissatisfaction, threats (投诉, 12315, 消协, 律师, 曝光, sue, chargeback…), profanity and
// praise. A negation shortly before a cue turns it ("不满意" is negative, "不是很满意" less so,
// "not bad" mildly positive), intensifiers strengthen it ("太", "非常", "really"), and
// repeated exclamation marks, repeated question marks ("人呢？？？") and shouting in capitals
// make a negative message more negative.
//
// A problem told calmly ("收到的杯子碎了", "the mug arrived broken") is a fact, not a mood, and
// scores 0; so does a question about how to complain ("投诉电话是多少？", "how do I file a
// complaint?"), which the complaint intent answers. Saying one will complain ("我要投诉",
// "I'm going to sue") is a threat and scores as anger.
//
// It is a lexicon, not a model: it has no notion of sarcasm ("great job" after a lost parcel)
// and sees only the words it knows. TestSentimentEval measures it on held-out messages.
func ScoreSentiment(text string) Sentiment {
	units, shout := sentimentUnits(text)
	toks := matchLexicon(units)

	var neg, pos []float64
	var cues []string
	add := func(label string, w float64) {
		w = math.Round(w*100) / 100
		if w < 0 {
			neg = append(neg, -w)
		} else if w > 0 {
			pos = append(pos, w)
		}
		cues = append(cues, fmt.Sprintf("%s(%+.2f)", label, w))
	}
	// A negator reaches the next cue within 3 tokens, an intensifier within 2; punctuation ends
	// both ("不，满意" is not a negation).
	negator, negAt := 0.0, 0
	boost, boostAt := 1.0, 0
	bangs := 0
	for i, t := range toks {
		switch t.kind {
		case cueBreak, cueBang, cueAsk:
			negator, boost = 0, 1
			if t.kind == cueBang {
				bangs++
			}
			if t.kind == cueAsk && i > 0 && toks[i-1].kind == cueAsk && (i < 2 || toks[i-2].kind != cueAsk) {
				add("??", -0.3) // "人呢？？？", "hello???": impatience, once per run
			}
			if t.kind == cueBang && i > 0 && toks[i-1].kind == cueAsk {
				bangs++ // "?!" counts twice
			}
			continue
		case cueNegator:
			negator, negAt = t.w, i
			continue
		case cueBoost:
			if i-boostAt > 2 {
				boost = 1
			}
			boost, boostAt = min(boost*t.w, 1.8), i
			continue
		case cuePlain, cueShield:
			if negator != 0 && i-negAt > 3 {
				negator = 0
			}
			if boost != 1 && i-boostAt > 2 {
				boost = 1
			}
			continue
		}
		if t.kind == cueBoosted && boost == 1 {
			continue // "差" alone is "short of", "差不多"…; "太差", "也太差" judge
		}
		w := t.w * boost
		label := t.text
		if negator != 0 && i-negAt <= 3 {
			label = "¬" + label
			if w < 0 {
				w = -w * 0.3 // "not bad", "不差": mildly positive
			} else {
				w = -w * negator // "not happy", "不是很满意" (a hedged negator weighs less)
			}
		}
		add(label, w)
		negator, boost = 0, 1
	}
	if shout && len(neg) == 0 {
		add("SHOUTING", -0.35)
	}
	score := 0.0
	if n := combine(neg); n > 0 {
		if shout {
			n *= 1.25
		}
		switch {
		case bangs >= 3:
			n *= 1.35
		case bangs == 2:
			n *= 1.2
		case bangs == 1:
			n *= 1.1
		}
		score = -min(n, 1) + 0.2*combine(pos) // "thanks, but this is too slow" stays negative
	} else {
		score = combine(pos)
	}
	score = math.Round(max(-1, min(1, score))*100) / 100
	if score == 0 {
		score = 0 // not -0
	}
	return Sentiment{Score: score, Cues: cues}
}

// combine is the strongest weight plus a quarter of the others: two mild complaints in one
// message are more than one, but not fury.
func combine(ws []float64) float64 {
	if len(ws) == 0 {
		return 0
	}
	best, rest := 0.0, 0.0
	for _, w := range ws {
		if w > best {
			rest += best
			best = w
		} else {
			rest += w
		}
	}
	return min(1, best+0.25*rest)
}

// ---- units: the text cut the way the lexicon is written ----

// A unit is a word of a spaced script (lower case, with its inner apostrophes and hyphens), a
// number, one Han, kana or Hangul character, an emoji, "!", "?" or "." (any other
// punctuation).
func sentimentUnits(text string) (units []string, shout bool) {
	var b strings.Builder
	words, capsWords := 0, 0
	flush := func() {
		if b.Len() == 0 {
			return
		}
		w := strings.Trim(b.String(), "'-")
		b.Reset()
		if w == "" {
			return
		}
		letters, upper := 0, 0
		for _, r := range w {
			if unicode.IsLetter(r) {
				letters++
				if unicode.IsUpper(r) {
					upper++
				}
			}
		}
		if letters >= 2 && letters == len([]rune(w)) {
			words++
			if upper == letters {
				capsWords++
			}
		}
		units = append(units, strings.ToLower(w))
	}
	rs := []rune(text)
	for i, r := range rs {
		if r >= 0xFF01 && r <= 0xFF5E { // full-width ASCII
			r -= 0xFEE0
		}
		switch {
		case r == '’' || r == '\'' || r == '-':
			// inside a word ("don't", "rip-off"); a break elsewhere
			if b.Len() > 0 && i+1 < len(rs) && isWordRune(rs[i+1]) {
				if r == '-' {
					b.WriteRune('-')
				} else {
					b.WriteRune('\'')
				}
				continue
			}
			flush()
			units = append(units, ".")
		case isCJK(r):
			flush()
			units = append(units, string(r))
		case isWordRune(r):
			b.WriteRune(r)
		case unicode.IsSpace(r):
			flush()
		case r == '!':
			flush()
			units = append(units, "!")
		case r == '?':
			flush()
			units = append(units, "?")
		case r == 0xFE0F || r == 0x200D: // emoji variation selector, joiner
		case unicode.IsSymbol(r) && r > 0x2000:
			flush()
			units = append(units, string(r))
		default:
			flush()
			units = append(units, ".")
		}
	}
	flush()
	return units, capsWords >= 3 && capsWords*10 >= words*6
}

func isCJK(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul)
}

func isWordRune(r rune) bool {
	return (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r)) && !isCJK(r)
}

// ---- the lexicon ----

type cueKind uint8

const (
	cuePlain   cueKind = iota // no meaning of its own
	cueShield                 // a phrase that hides the cues inside it ("不好意思", "no thanks")
	cueWeight                 // negative or positive: w is the signed weight
	cueBoosted                // a cue only after an intensifier ("太差", but not "差多少")
	cueNegator                // w: how much of a following cue it turns (0.8; hedged "不是很" 0.6)
	cueBoost                  // w: the factor for the next cue
	cueBreak                  // punctuation
	cueBang                   // !
	cueAsk                    // ?
)

type cueTok struct {
	kind cueKind
	w    float64
	text string
}

type lexEntry struct {
	units []string
	tok   cueTok
}

// lexicon maps an entry's first unit to the entries that start with it, longest first.
type lexicon map[string][]lexEntry

// sentimentLexicon is built once from the word lists below.
var sentimentLexicon = buildLexicon()

func buildLexicon() lexicon {
	lx := lexicon{}
	addAll := func(kind cueKind, w float64, list string) {
		for _, phrase := range strings.Split(list, "|") {
			phrase = strings.TrimSpace(phrase)
			if phrase == "" {
				continue
			}
			units, _ := sentimentUnits(phrase)
			if len(units) == 0 {
				continue
			}
			lx[units[0]] = append(lx[units[0]], lexEntry{units: units, tok: cueTok{kind: kind, w: w, text: phrase}})
		}
	}
	for _, g := range negativeCues {
		addAll(cueWeight, -g.w, g.words)
	}
	for _, g := range positiveCues {
		addAll(cueWeight, g.w, g.words)
	}
	for _, g := range negators {
		addAll(cueNegator, g.w, g.words)
	}
	for _, g := range intensifiers {
		addAll(cueBoost, g.w, g.words)
	}
	addAll(cueBoosted, -0.35, boostedOnly)
	addAll(cueShield, 0, shields)
	for k, es := range lx {
		// longest first; among equals, the later list wins (shields are added last)
		for i := 1; i < len(es); i++ {
			for j := i; j > 0 && len(es[j].units) >= len(es[j-1].units); j-- {
				es[j], es[j-1] = es[j-1], es[j]
			}
		}
		lx[k] = es
	}
	return lx
}

// matchLexicon reads units left to right, taking at each position the longest entry that
// starts there.
func matchLexicon(units []string) []cueTok {
	var out []cueTok
	for i := 0; i < len(units); {
		u := units[i]
		switch u {
		case ".":
			out = append(out, cueTok{kind: cueBreak})
			i++
			continue
		case "!":
			out = append(out, cueTok{kind: cueBang})
			i++
			continue
		case "?":
			out = append(out, cueTok{kind: cueAsk})
			i++
			continue
		}
		matched := false
		for _, e := range sentimentLexicon[u] {
			if len(e.units) <= len(units)-i && equalUnits(e.units, units[i:i+len(e.units)]) {
				out = append(out, e.tok)
				i += len(e.units)
				matched = true
				break
			}
		}
		if !matched {
			out = append(out, cueTok{kind: cuePlain, text: u})
			i++
		}
	}
	return out
}

func equalUnits(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

type cueGroup struct {
	w     float64
	words string // "|"-separated; Chinese without spaces, other languages as words
}

// negativeCues weigh how negative a word or phrase is on its own: 0.3 mildly displeased, 0.5
// plainly unhappy, 0.7 and more angry or threatening (one such message brings a person in).
var negativeCues = []cueGroup{
	// threats: a complaint to an authority, a lawyer, the press, the bank
	{0.85, "12315|消协|消協|消费者协会|消費者協會|工商局|市场监管|举报|起诉|告你们|法院|传票|律师函|曝光|黑猫投诉|找媒体|" +
		"sue|suing|lawsuit|legal action|small claims|chargeback|charge back|dispute the charge|disputing the charge|" +
		"denunciar|denuncia|porter plainte|訴える|고소"},
	{0.75, "律师|律師|我要投诉|我要投訴|要投诉|投诉你们|必须投诉|去投诉|会投诉|发微博|差评|" +
		"lawyer|lawyers|attorney|report you|reporting you|better business bureau|bbb|consumer protection|" +
		"trading standards|ombudsman|going to complain|will complain|going to file a complaint|" +
		"will file a complaint|bad review|one star|1 star|abogado|avocat|anwalt|弁護士|변호사"},
	// abuse and profanity
	{0.85, "妈的|媽的|他妈|他媽|tmd|草泥马|傻逼|去死|滚蛋|无耻|無恥|忍无可忍|岂有此理|气死|氣死|" +
		"fuck|fucking|what the fuck|screw you|bullshit|sick and tired|" +
		"mierda|merde|scheiße|scheisse|ふざけるな|許せない|🤬"},
	{0.75, "滚|滾|尼玛|我靠|卧槽|废物|白痴|骗子|騙子|骗人|騙人|诈骗|詐騙|欺骗|黑心|奸商|流氓|垃圾|受够|受夠|" +
		"furious|livid|outraged|outrageous|disgusting|disgraceful|disgrace|shame on you|appalling|atrocious|" +
		"horrendous|abysmal|scam|scams|scammer|scammers|fraud|fraudulent|liar|liars|shit|wtf|idiot|idiots|moron|morons|" +
		"enough is enough|worst service|worst experience|worst company|estafa|estafadores|arnaque|escroc|escrocs|scandaleux|betrug|betrüger|unverschämt|" +
		"unverschämtheit|frechheit|最悪|詐欺|최악|사기|😡"},
	// anger and strong dissatisfaction
	{0.6, "差死了|生气|生氣|愤怒|憤怒|火大|恼火|寒心|心寒|恶心|太过分|欺负|坑人|坑爹|被坑|骗|敷衍|有病|烦死|扯淡|什么破|破玩意|" +
		"再也不|拉黑|一点用都没有|" +
		"angry|pissed|pissed off|mad|unacceptable|ridiculous|worst|pathetic|incompetent|useless|garbage|" +
		"trash|crap|lying|lied|rip-off|ripoff|rip off|fed up|sick of|had enough|a joke|kidding me|hate|" +
		"sucks|never again|never ordering|never order|never buy|never buying|never shopping|never use|" +
		"waste of my time|damn it|what the hell|stupid|ignoring me|" +
		"pésimo|vergüenza|inaceptable|enfadado|harto|inadmissible|honteux|furieux|inacceptable|wütend|" +
		"inakzeptabel|katastrophe|ふざけ|腹が立つ|화나|화가|😠"},
	{0.5, "烂|爛|太麻烦|很麻烦|好麻烦|真麻烦|麻烦死|质量差|服务差|态度差|物流差|体验差|態度差|失望|不满|不滿|不满意|不滿意|不高兴|不爽|崩溃|无语|無語|离谱|離譜|过分|過分|糟糕|糟透|差劲|差远了|差太多|坑|忽悠|" +
		"没用|沒用|没有用|没什么用|搞什么|什么鬼|好欺负|服了|太慢|這麼慢|太久|呵呵|搞笑|说了多少遍|第几次|几遍了|几次了|" +
		"disappointed|disappointing|dissatisfied|unhappy|upset|annoyed|annoying|frustrated|frustrating|" +
		"irritated|terrible|horrible|awful|dreadful|lousy|nightmare|shocking|absurd|rubbish|damn|" +
		"taking too long|taking way too long|takes too long|took too long|waited too long|waiting too long|" +
		"taking forever|takes forever|took forever|waste of time|waste of money|doesn't help|didn't help|does not help|did not help|no help|unhelpful|" +
		"poor service|poor quality|poor experience|want to complain|how many times|third time|excuses|" +
		"want to make a complaint|make a complaint|file a complaint|" +
		"decepcionado|ridículo|déçu|déçue|nul|nulle|enttäuscht|ひどい|がっかり|짜증|실망|😤|👎|💩"},
	// mild
	{0.35, "烦|郁闷|醉了|闹心|糟心|不好|不好用|不太好|慢|这么久|這麼久|到底|怎么又|又是这样|投诉|" +
		"bad|poor|slow|confusing|waste|still waiting|still no|ignored|no response|nobody replied|no one replied|" +
		"not good enough"},
}

// positiveCues: thanks and praise.
var positiveCues = []cueGroup{
	{0.6, "满意|太好了|非常好|给力|好评|" +
		"excellent|perfect|awesome|amazing|wonderful|fantastic|satisfied|happy"},
	{0.5, "感谢|很好|真好|挺好|棒|赞|点赞|喜欢|开心|高兴|帮大忙|" +
		"great|love|lovely|helpful|appreciate|pleased|brilliant|well done|" +
		"ありがとう|감사|😊|👍|🙏|❤"},
	{0.4, "谢谢|多谢|不错|靠谱|辛苦了|好用|thanks|thank|good|nice|glad|cool|gracias|merci|danke"},
}

// negators turn the cue that follows; hedged ones ("不是很", "not very") turn it less.
var negators = []cueGroup{
	{0.8, "不|没|没有|并不|并没有|不是|别|未|从不|一点也不|一点都不|" +
		"not|no|never|don't|dont|doesn't|doesnt|didn't|didnt|isn't|isnt|wasn't|wasnt|aren't|arent|" +
		"won't|wont|can't|cant|cannot|hardly|not at all|nothing"},
	{0.6, "不是很|不太|不怎么|不算|不是特别|没那么|没有那么|不那么|不是太|" +
		"not very|not really|not that|not so|not too|not exactly|not particularly"},
}

// intensifiers strengthen the cue that follows.
var intensifiers = []cueGroup{
	{1.5, "太|非常|极其|極其|極|特别|简直|极度|extremely|absolutely|utterly|incredibly|beyond|totally|completely"},
	{1.3, "真|真的|十分|超|巨|实在|最|好|也太|so|very|really|truly|way|such|bloody|most|super"},
	{1.25, "很|挺|都|pretty|quite"},
}

// boostedOnly are words too common in other senses to count alone: only after an intensifier.
const boostedOnly = "差"

// shields are phrases whose words mean nothing here ("不好意思" is "excuse me", "no thanks" is
// a polite no, "垃圾桶" is a bin): they hide the cues inside them. Questions about how to
// complain are shields too: they ask for information.
const shields = "不好意思|没关系|没事|没问题|不客气|不用谢|不谢|差不多|差价|差额|差点|相差|出差|时差|偏差|差距|" +
	"不喜欢|差多少|还差|麻烦|麻烦你|麻烦您|麻烦帮|麻烦了|好不好|不好说|滚动|滚筒|垃圾袋|垃圾桶|垃圾邮件|垃圾箱|防骗|慢慢|慢走|多久|好久不见|没用过|没用上|好的|好吧|" +
	"怎么投诉|如何投诉|投诉建议|投诉电话|投诉渠道|投诉方式|投诉入口|投诉流程|在哪投诉|哪里投诉|投诉进度|" +
	"no problem|no worries|no thanks|no thank you|never mind|nevermind|not a problem|good morning|good afternoon|" +
	"good evening|good night|how do i file a complaint|how do i make a complaint|how can i file a complaint|" +
	"how can i make a complaint|how to file a complaint|how to make a complaint|how do i complain|" +
	"where can i complain|tell me a joke|mad about|no rush"
