package dialog

import (
	"regexp"
	"strings"
	"unicode"
)

// The short answers a flow waits for are matched by rules, not by the intent model: they are
// a closed set, they must never be missed, and a quick-reply button sends exactly these words.
var (
	yesRe = regexp.MustCompile(`(?i)^(是|是的|对|对的|没错|好|好的|好吧|确认|确定|可以|行|没问题|嗯|嗯嗯|要|需要|同意|提交|` +
		`y|yes|yeah|yep|yup|sure|ok|okay|confirm|confirmed|correct|right|go ahead|do it|please do|sounds good|` +
		`s[ií]|oui|ja|はい|네)$`)
	noRe = regexp.MustCompile(`(?i)^(不|不是|不对|不要|不用|不用了|否|不行|先不|不确认|` +
		`n|no|nope|nah|not now|don'?t|do not|no thanks|no thank you|non|nein|いいえ|아니요)$`)
	cancelRe = regexp.MustCompile(`(?i)^(算了|算了吧|不办了|不弄了|不需要了|不要了|取消吧|先不办了|放弃|退出|` +
		`never ?mind|nvm|forget it|cancel|cancel (that|this|it)|stop|quit|exit|abort|` +
		`olv[ií]dalo|laisse tomber|egal)$`)
	restartRe = regexp.MustCompile(`(?i)^(重新开始|重来|从头开始|重新来|restart|start over|start again|begin again|reset)$`)
	// correctRe: the customer says something they gave was wrong ("不对，是另一个订单",
	// "no, the other order", "actually it's …"). Not "change the …": that asks for a task.
	correctRe = regexp.MustCompile(`(?i)(不对|错了|搞错|不是这个|另一个|另外一个|换成|改成|改为|应该是|` +
		`\bwrong\b|\bnot that\b|\bthe other\b|\bactually\b|\bi meant\b|\binstead\b|^no,)`)
)

// normalizeShort trims what surrounds a short answer: spaces, punctuation, "please", "谢谢".
func normalizeShort(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.TrimFunc(s, func(r rune) bool { return unicode.IsPunct(r) || unicode.IsSpace(r) || unicode.IsSymbol(r) })
	for _, suffix := range []string{" please", " pls", " thanks", " thank you", "吧", "啊", "呀", "的", "谢谢"} {
		if t := strings.TrimSpace(strings.TrimSuffix(s, suffix)); t != "" && t != s && len(t) < len(s) {
			s = strings.TrimFunc(t, func(r rune) bool { return unicode.IsPunct(r) || unicode.IsSpace(r) })
		}
	}
	return s
}

func isYes(s string) bool     { return yesRe.MatchString(normalizeShort(s)) }
func isNo(s string) bool      { return noRe.MatchString(normalizeShort(s)) }
func isCancel(s string) bool  { return cancelRe.MatchString(normalizeShort(s)) }
func isRestart(s string) bool { return restartRe.MatchString(normalizeShort(s)) }
func isCorrection(s string) bool {
	return correctRe.MatchString(strings.TrimSpace(s))
}

// choice reads "1", "2", "第一个", "the second" as a 0-based index into n options, or -1.
func choice(s string, n int) int {
	s = normalizeShort(s)
	words := [][]string{
		{"1", "一", "第一个", "第一", "first", "the first", "first one", "the first one", "a"},
		{"2", "二", "第二个", "第二", "second", "the second", "second one", "the second one", "b"},
		{"3", "三", "第三个", "第三", "third", "the third", "third one", "the third one", "c"},
	}
	for i := 0; i < n && i < len(words); i++ {
		for _, w := range words[i] {
			if s == w {
				return i
			}
		}
	}
	return -1
}
