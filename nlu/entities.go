package nlu

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
)

// Entity is a value found in a message: what it is, where it is, and its normalised form.
type Entity struct {
	Type  string `json:"type"`  // one of the Entity… type constants
	Text  string `json:"text"`  // the span as written
	Start int    `json:"start"` // byte offsets into the message: Text == message[Start:End]
	End   int    `json:"end"`
	Value string `json:"value"` // normalised, see the type constants
}

// Entity types. Each says how its Value is normalised.
const (
	// EntityOrderNumber is an order number cued by 订单/单号/order/#: upper-case, spaces removed
	// ("A-1029", "SO20261127001").
	EntityOrderNumber = "order_number"
	// EntityPhone is a phone number in E.164 ("+8613812345678", "+14155550123").
	EntityPhone = "phone"
	// EntityEmail is an e-mail address in lower case.
	EntityEmail = "email"
	// EntityAmount is a sum of money: a decimal string and an ISO 4217 code ("59.90 CNY").
	EntityAmount = "amount"
	// EntityDate is a calendar date, resolved against the reference time ("2026-11-28").
	EntityDate = "date"
	// EntityQuantity is a count of items ("3").
	EntityQuantity = "quantity"
)

// Extract finds order numbers, phone numbers, e-mail addresses, amounts, dates and quantities
// in a Chinese or English message. now is the reference time for relative dates (明天, 下周一,
// 3天后, tomorrow, next Monday, in 3 days) and for the year of dates written without one; dates
// are calendar days in now's location. Each byte of text belongs to at most one entity; the
// result is sorted by Start and is nil when nothing is found.
func Extract(text string, now time.Time) []Entity {
	var c []entityCandidate
	for _, find := range entityFinders {
		c = find(c, text, now)
	}
	// A span belongs to one entity: the more specific type wins, then the longer span.
	slices.SortStableFunc(c, func(a, b entityCandidate) int {
		if a.rank != b.rank {
			return a.rank - b.rank
		}
		if la, lb := a.End-a.Start, b.End-b.Start; la != lb {
			return lb - la
		}
		return a.Start - b.Start
	})
	var out []Entity
	taken := make([]bool, len(text))
	for _, k := range c {
		if slices.Contains(taken[k.Start:k.End], true) {
			continue
		}
		for i := k.Start; i < k.End; i++ {
			taken[i] = true
		}
		out = append(out, k.Entity)
	}
	slices.SortFunc(out, func(a, b Entity) int { return a.Start - b.Start })
	return out
}

// entityCandidate is an entity before overlaps are resolved; a lower rank wins a contested span.
type entityCandidate struct {
	Entity
	rank int
}

// entityFinders run in this order; the order does not matter, ranks decide overlaps.
var entityFinders = []func([]entityCandidate, string, time.Time) []entityCandidate{
	findEmails, findOrderNumbers, findPhones, findDates, findAmounts, findQuantities,
}

// Ranks: e-mail addresses and cued order numbers are the most specific, quantities the least.
const (
	rankEmail = iota
	rankOrder
	rankPhone
	rankDate
	rankAmount
	rankQuantity
)

func addEntity(c []entityCandidate, rank int, typ, text string, start, end int, value string) []entityCandidate {
	return append(c, entityCandidate{Entity{Type: typ, Text: text[start:end], Start: start, End: end, Value: value}, rank})
}

// isWordRune reports whether r would continue a number or a Latin word.
func isWordRune(r rune) bool {
	return r < utf8.RuneSelf && (r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_')
}

// runeBefore returns the rune that ends text[:i], or 0 at the start.
func runeBefore(text string, i int) rune {
	if i <= 0 {
		return 0
	}
	r, _ := utf8.DecodeLastRuneInString(text[:i])
	return r
}

// runeAfter returns the rune that starts text[i:], or 0 at the end.
func runeAfter(text string, i int) rune {
	if i >= len(text) {
		return 0
	}
	r, _ := utf8.DecodeRuneInString(text[i:])
	return r
}

// standsAlone reports whether text[start:end] is not glued to digits or Latin letters.
func standsAlone(text string, start, end int) bool {
	return !isWordRune(runeBefore(text, start)) && !isWordRune(runeAfter(text, end))
}

// ---- e-mail ----

var emailRe = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}`)

func findEmails(c []entityCandidate, text string, _ time.Time) []entityCandidate {
	for _, m := range emailRe.FindAllStringIndex(text, -1) {
		if isWordRune(runeAfter(text, m[1])) {
			continue
		}
		c = addEntity(c, rankEmail, EntityEmail, text, m[0], m[1], strings.ToLower(text[m[0]:m[1]]))
	}
	return c
}

// ---- order numbers ----

// orderRe finds an order number after a cue. The number is digits with optional letters and
// hyphens ("12345678", "A-1029", "SO20261127001"), or an upper-case prefix, a space and
// digits ("SO 20261127001"). Group 1 is the cue, group 2 the number.
var orderRe = regexp.MustCompile(
	`((?i:\border\s*(?:number|num\.?|no\.?|id|#)?)|订单(?:号码|编号|编码|号)?|单号|(?:^|[^\w&])#)` +
		`\s*(?:(?i:is|was)\s+|是|为)?\s*[:：]?\s*(?i:no\.\s*)?#?\s*` +
		`([A-Za-z]{0,5}\d[0-9A-Za-z]*(?:-[0-9A-Za-z]+)*|[A-Za-z]{1,5}-\d[0-9A-Za-z]*(?:-[0-9A-Za-z]+)*|[A-Z]{1,5} \d[0-9A-Za-z]*)`)

func findOrderNumbers(c []entityCandidate, text string, _ time.Time) []entityCandidate {
	for _, m := range orderRe.FindAllStringSubmatchIndex(text, -1) {
		start, end := m[4], m[5]
		if isWordRune(runeAfter(text, end)) {
			continue
		}
		id := strings.ToUpper(strings.ReplaceAll(text[start:end], " ", ""))
		var digits, letters int
		for _, r := range id {
			switch {
			case r >= '0' && r <= '9':
				digits++
			case r >= 'A' && r <= 'Z':
				letters++
			}
		}
		// A strong cue names the number ("order no.", "订单号", "#"); after a bare "order" or
		// "订单" the word may be a verb or a noun before a count, so the number must look like
		// an identifier.
		cue := strings.ToLower(text[m[0]:start])
		strong := strings.ContainsAny(cue, "#:：号") || strings.Contains(cue, "no") || strings.Contains(cue, "num") || strings.Contains(cue, "id")
		switch {
		case digits+letters < 4 || digits < 3 || len(id) > 32:
			continue
		case !strong && letters == 0 && digits < 6:
			continue
		}
		c = addEntity(c, rankOrder, EntityOrderNumber, text, start, end, id)
	}
	return c
}

// ---- phone numbers ----

var (
	// phoneIntlRe is a number with a country code: "+" and groups of digits. Trailing groups
	// that make it invalid ("+1 415 555 0123 2 items") are dropped one by one.
	phoneIntlRe = regexp.MustCompile(`\+\(?\d+\)?(?:[ \-.]{1,2}\(?\d+\)?)*`)
	// phoneCNRe is a Chinese mobile (138 1234 5678), a landline with its area code
	// (010-12345678, (0755)86013388) or a 400/800 service number (400-820-8820).
	phoneCNRe = regexp.MustCompile(`1[3-9]\d(?:[ \-]?\d{4}){2}|(?:\(0\d{2,3}\)|0\d{2,3})[ \-]?\d{7,8}|[48]00[ \-]?\d{3}[ \-]?\d{4}`)
	// phoneNANPRe is the North American grouping 3-3-4, which Chinese numbers never use.
	phoneNANPRe = regexp.MustCompile(`(?:\(\d{3}\) ?|\d{3}[ \-.])\d{3}[ \-.]\d{4}`)
	digitRunRe  = regexp.MustCompile(`\d+\)?`)
)

// parsePhone returns s in E.164 when it is a valid number, read in region when it has no
// country code.
func parsePhone(s, region string) (string, bool) {
	n, err := phonenumbers.Parse(s, region)
	if err != nil || !phonenumbers.IsValidNumber(n) {
		return "", false
	}
	return phonenumbers.Format(n, phonenumbers.E164), true
}

func findPhones(c []entityCandidate, text string, _ time.Time) []entityCandidate {
	for _, m := range phoneIntlRe.FindAllStringIndex(text, -1) {
		if isWordRune(runeBefore(text, m[0])) {
			continue
		}
		span := text[m[0]:m[1]]
		ends := digitRunRe.FindAllStringIndex(span, -1)
		n, digits := 0, 0 // only the first n groups fit in 15 digits, the E.164 limit
		for ; n < len(ends); n++ {
			if digits += len(strings.TrimSuffix(span[ends[n][0]:ends[n][1]], ")")); digits > 15 {
				break
			}
		}
		for i := n - 1; i >= 0; i-- {
			end := m[0] + ends[i][1]
			if isWordRune(runeAfter(text, end)) {
				continue
			}
			if v, ok := parsePhone(text[m[0]:end], "CN"); ok {
				c = addEntity(c, rankPhone, EntityPhone, text, m[0], end, v)
				break
			}
		}
	}
	for _, p := range []struct {
		re     *regexp.Regexp
		region string
	}{{phoneCNRe, "CN"}, {phoneNANPRe, "US"}} {
		for _, m := range p.re.FindAllStringIndex(text, -1) {
			if !standsAlone(text, m[0], m[1]) || runeBefore(text, m[0]) == '+' {
				continue
			}
			if v, ok := parsePhone(text[m[0]:m[1]], p.region); ok {
				c = addEntity(c, rankPhone, EntityPhone, text, m[0], m[1], v)
			}
		}
	}
	return c
}

// ---- numbers written in Chinese ----

const zhNumeral = `[零〇一二两三四五六七八九十百千万]{1,10}`

var zhDigit = map[rune]int64{'零': 0, '〇': 0, '一': 1, '二': 2, '两': 2, '三': 3, '四': 4, '五': 5, '六': 6, '七': 7, '八': 8, '九': 9}

// parseZhInt reads a simple Chinese numeral: 三, 十五, 二十, 一百零五, 两千, 一万五 (15000).
func parseZhInt(s string) (int64, bool) {
	var total, section, num, lastUnit int64
	prev := rune(0)
	for _, r := range s {
		if d, ok := zhDigit[r]; ok {
			if _, twice := zhDigit[prev]; twice && prev != '零' && prev != '〇' {
				return 0, false // 五一, 二〇二六: not a number this parser reads
			}
			num = d
			prev = r
			continue
		}
		var unit int64
		switch r {
		case '十':
			unit = 10
		case '百':
			unit = 100
		case '千':
			unit = 1000
		case '万':
			unit = 10000
		default:
			return 0, false
		}
		if unit == 10000 {
			section += num
			if section == 0 {
				section = 1
			}
			total += section * unit
			section = 0
		} else {
			if num == 0 {
				num = 1 // 十五, 百
			}
			section += num * unit
		}
		num, lastUnit, prev = 0, unit, r
	}
	// Spoken shorthand: the last digit right after 百, 千 or 万 counts in the next unit down.
	if _, isDigit := zhDigit[prev]; isDigit && num > 0 && lastUnit >= 100 && strings.HasSuffix(s, string(prev)) {
		if r, _ := utf8.DecodeLastRuneInString(strings.TrimSuffix(s, string(prev))); r == '百' || r == '千' || r == '万' {
			num *= lastUnit / 10
		}
	}
	return total + section + num, true
}

// parseCount reads a count written in digits or Chinese.
func parseCount(s string) (int64, bool) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true
	}
	if n, ok := englishNumber[strings.ToLower(s)]; ok {
		return n, true
	}
	return parseZhInt(s)
}

var englishNumber = map[string]int64{
	"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
	"seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}

// ---- amounts ----

const amountNumber = `\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?`

var (
	amountPrefixRe = regexp.MustCompile(`(US\$|HK\$|(?i:rmb|cny|usd|eur|gbp|jpy|hkd)|人民币|美元|欧元|¥|￥|\$|€|£)\s?(` + amountNumber + `)`)
	amountSuffixRe = regexp.MustCompile(`(` + amountNumber + `)\s?(元|圆|块钱|块|人民币|美元|美金|欧元|英镑|日元|港币|港元|(?i:rmb|yuan|cny|usd|eur|gbp|jpy|hkd|dollars?|bucks|euros?))`)
	// amountDimesRe reads the spoken tail of 三块五 and 5元5角: tenths of a yuan.
	amountDimesRe = regexp.MustCompile(`^([1-9一二两三四五六七八九])(毛|角)?`)
	amountZhRe    = regexp.MustCompile(`(` + zhNumeral + `(?:点[零〇一二三四五六七八九]{1,4})?)(元|块钱|块|美元|美金|欧元)`)
)

var currencyCode = map[string]string{
	"US$": "USD", "HK$": "HKD", "rmb": "CNY", "cny": "CNY", "usd": "USD", "eur": "EUR", "gbp": "GBP",
	"jpy": "JPY", "hkd": "HKD", "人民币": "CNY", "美元": "USD", "欧元": "EUR", "¥": "CNY", "￥": "CNY",
	"$": "USD", "€": "EUR", "£": "GBP", "元": "CNY", "圆": "CNY", "块钱": "CNY", "块": "CNY",
	"美金": "USD", "英镑": "GBP", "日元": "JPY", "港币": "HKD", "港元": "HKD", "yuan": "CNY",
	"dollar": "USD", "dollars": "USD", "bucks": "USD", "euro": "EUR", "euros": "EUR",
}

func currencyOf(s string) string {
	if code, ok := currencyCode[s]; ok {
		return code
	}
	return currencyCode[strings.ToLower(s)]
}

// decimalAmount writes a decimal number with at least the currency's minor digits.
func decimalAmount(intPart, frac, code string) string {
	intPart = strings.TrimLeft(strings.ReplaceAll(intPart, ",", ""), "0")
	if intPart == "" {
		intPart = "0"
	}
	minor := 2
	if code == "JPY" {
		minor = 0
	}
	for len(frac) < minor {
		frac += "0"
	}
	if frac == "" {
		return intPart + " " + code
	}
	return intPart + "." + frac + " " + code
}

func splitDecimal(s string) (string, string) {
	i, f, _ := strings.Cut(s, ".")
	return i, f
}

// quantityWords are the measure words that count things, not money.
const quantityWords = "件个只台瓶盒箱包双套份条本支张袋罐桶对把部块枚听副顶粒片"

// dimes returns the tenths digit spoken after a yuan amount at text[i:] and where they end.
func dimes(text string, i int, unit string) (string, int) {
	if unit != "元" && unit != "块" && unit != "块钱" {
		return "", i
	}
	m := amountDimesRe.FindStringSubmatchIndex(text[i:])
	if m == nil {
		return "", i
	}
	end := i + m[1]
	if next := runeAfter(text, end); m[4] < 0 && (isWordRune(next) || next == '.' || strings.ContainsRune("十百千万"+quantityWords, next)) {
		return "", i // 5块2个, 5块55: not dimes
	}
	d := text[i+m[2] : i+m[3]]
	if n, ok := zhDigit[[]rune(d)[0]]; ok {
		d = strconv.FormatInt(n, 10)
	}
	return d, end
}

// isPieceOf reports whether 块 at text[i:] counts things ("两块蛋糕") rather than money.
func isPieceOf(text string, i int) bool {
	r := runeAfter(text, i)
	_, dime := zhDigit[r] // 三块五: three and a half yuan
	return unicode.Is(unicode.Han, r) && !dime && !strings.ContainsRune("钱多左的了吧啊呢吗嘛是和还就，。", r)
}

// wordUnitEnds reports whether a Latin currency word or code ends at i.
func wordUnitEnds(text string, unit string, i int) bool {
	return unit[0] >= utf8.RuneSelf || !isWordRune(runeAfter(text, i))
}

func findAmounts(c []entityCandidate, text string, _ time.Time) []entityCandidate {
	for _, m := range amountPrefixRe.FindAllStringSubmatchIndex(text, -1) {
		unit := text[m[2]:m[3]]
		if (unit[0] != '$' && unit[0] < utf8.RuneSelf && isWordRune(runeBefore(text, m[0]))) || isWordRune(runeAfter(text, m[1])) {
			continue
		}
		code := currencyOf(unit)
		i, f := splitDecimal(text[m[4]:m[5]])
		c = addEntity(c, rankAmount, EntityAmount, text, m[0], m[1], decimalAmount(i, f, code))
	}
	for _, m := range amountSuffixRe.FindAllStringSubmatchIndex(text, -1) {
		unit := text[m[4]:m[5]]
		if isWordRune(runeBefore(text, m[0])) || !wordUnitEnds(text, unit, m[1]) || runeBefore(text, m[0]) == '.' {
			continue
		}
		if strings.HasPrefix(unit, "块") && unit != "块钱" && isPieceOf(text, m[1]) {
			continue
		}
		code := currencyOf(unit)
		i, f := splitDecimal(text[m[2]:m[3]])
		end := m[1]
		if f == "" {
			f, end = dimes(text, end, unit)
		}
		c = addEntity(c, rankAmount, EntityAmount, text, m[0], end, decimalAmount(i, f, code))
	}
	for _, m := range amountZhRe.FindAllStringSubmatchIndex(text, -1) {
		unit := text[m[4]:m[5]]
		if unit == "块" && isPieceOf(text, m[1]) {
			continue
		}
		intZh, fracZh, _ := strings.Cut(text[m[2]:m[3]], "点")
		n, ok := parseZhInt(intZh)
		if !ok {
			continue
		}
		var frac strings.Builder
		for _, r := range fracZh {
			frac.WriteByte(byte('0' + zhDigit[r]))
		}
		f, end := frac.String(), m[1]
		if f == "" {
			f, end = dimes(text, end, unit)
		}
		c = addEntity(c, rankAmount, EntityAmount, text, m[0], end, decimalAmount(strconv.FormatInt(n, 10), f, currencyOf(unit)))
	}
	return c
}

// ---- dates ----

var (
	dateISORe   = regexp.MustCompile(`(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})`)
	dateSlashRe = regexp.MustCompile(`(\d{1,2})/(\d{1,2})(?:/(\d{4}|\d{2}))?`)
	dateZhRe    = regexp.MustCompile(`(?:(\d{4})\s*年\s*)?(\d{1,2}|[一二三四五六七八九十]{1,3})\s*月\s*(\d{1,2}|[一二三四五六七八九十]{1,3})\s*[日号]`)
	dateMonthRe = regexp.MustCompile(`(?i)\b(` + monthNames + `)\.?\s+(\d{1,2})(?:st|nd|rd|th)?\b(?:,?\s+(\d{4})\b)?`)
	dateDayRe   = regexp.MustCompile(`(?i)\b(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?(` + monthNames + `)\b\.?(?:,?\s+(\d{4})\b)?`)

	dateZhDayRe     = regexp.MustCompile(`大后天|大前天|后天|前天|今天|今日|明天|明日|昨天|昨日`)
	dateZhWeekdayRe = regexp.MustCompile(`(下下|下|上上|上|这|本)?个?(?:周|星期|礼拜)([一二三四五六日天])`)
	dateZhAfterRe   = regexp.MustCompile(`(\d{1,3}|` + zhNumeral + `)\s*(天|日|个星期|个礼拜|星期|礼拜|周)\s*(以后|之后|后|以前|之前|前)`)
	dateEnDayRe     = regexp.MustCompile(`(?i)\b(?:(?:the\s+)?day\s+after\s+tomorrow|(?:the\s+)?day\s+before\s+yesterday|today|tonight|tomorrow|tmrw|tmr|yesterday)\b`)
	dateEnWeekdayRe = regexp.MustCompile(`(?i)\b(?:(next|this|last|coming)\s+)?(monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tues|tue|wed|thurs|thur|thu|fri|sat|sun)\b`)
	dateEnInRe      = regexp.MustCompile(`(?i)\bin\s+(\d{1,3}|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\s+(days?|weeks?)\b`)
	dateEnAgoRe     = regexp.MustCompile(`(?i)\b(\d{1,3}|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\s+(days?|weeks?)\s+(later|from\s+now|ago)\b`)
)

const monthNames = `jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?`

var monthByPrefix = map[string]time.Month{
	"jan": time.January, "feb": time.February, "mar": time.March, "apr": time.April,
	"may": time.May, "jun": time.June, "jul": time.July, "aug": time.August,
	"sep": time.September, "oct": time.October, "nov": time.November, "dec": time.December,
}

var weekdayByName = map[string]time.Weekday{
	"mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday, "thu": time.Thursday,
	"fri": time.Friday, "sat": time.Saturday, "sun": time.Sunday,
	"一": time.Monday, "二": time.Tuesday, "三": time.Wednesday, "四": time.Thursday,
	"五": time.Friday, "六": time.Saturday, "日": time.Sunday, "天": time.Sunday,
}

var (
	zhDayOffset  = map[string]int{"大后天": 3, "后天": 2, "明天": 1, "明日": 1, "今天": 0, "今日": 0, "昨天": -1, "昨日": -1, "前天": -2, "大前天": -3}
	zhWeekOffset = map[string]int{"下下": 2, "下": 1, "这": 0, "本": 0, "上": -1, "上上": -2}
)

const isoDate = "2006-01-02"

// dayFrom is now's calendar day moved by n days, at midnight in now's location.
func dayFrom(now time.Time, n int) time.Time {
	y, m, d := now.Date()
	return time.Date(y, m, d+n, 0, 0, 0, 0, now.Location())
}

// validDate returns the date when y-m-d exists.
func validDate(y, m, d int, loc *time.Location) (time.Time, bool) {
	if m < 1 || m > 12 || d < 1 || d > 31 {
		return time.Time{}, false
	}
	t := time.Date(y, time.Month(m), d, 0, 0, 0, 0, loc)
	return t, t.Day() == d
}

// nearestDate resolves a month and day without a year to the nearest such date to now.
func nearestDate(now time.Time, m, d int) (time.Time, bool) {
	today := dayFrom(now, 0)
	var best time.Time
	found := false
	for _, y := range []int{now.Year() - 1, now.Year(), now.Year() + 1} {
		t, ok := validDate(y, m, d, now.Location())
		if ok && (!found || absDuration(t.Sub(today)) < absDuration(best.Sub(today))) {
			best, found = t, true
		}
	}
	return best, found
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// dateWith resolves a year (empty, two or four digits), a month and a day.
func dateWith(now time.Time, year string, m, d int) (time.Time, bool) {
	if year == "" {
		return nearestDate(now, m, d)
	}
	y, _ := strconv.Atoi(year)
	if len(year) == 2 {
		y += 2000
	}
	return validDate(y, m, d, now.Location())
}

// mondayIndex numbers weekdays from Monday (0) to Sunday (6).
func mondayIndex(w time.Weekday) int { return (int(w) + 6) % 7 }

// weekdayInWeek is weekday w of the Monday-to-Sunday week that is weeks away from now's.
func weekdayInWeek(now time.Time, weeks int, w time.Weekday) time.Time {
	return dayFrom(now, 7*weeks-mondayIndex(now.Weekday())+mondayIndex(w))
}

// upcomingWeekday is the first w on or after now's day.
func upcomingWeekday(now time.Time, w time.Weekday) time.Time {
	return dayFrom(now, (int(w)-int(now.Weekday())+7)%7)
}

// previousWeekday is the last w before now's day.
func previousWeekday(now time.Time, w time.Weekday) time.Time {
	n := (int(now.Weekday()) - int(w) + 7) % 7
	if n == 0 {
		n = 7
	}
	return dayFrom(now, -n)
}

func smallCount(s string) int {
	n, ok := parseCount(s)
	if !ok || n > 1<<20 {
		return -1
	}
	return int(n)
}

func addDate(c []entityCandidate, text string, start, end int, t time.Time) []entityCandidate {
	return addEntity(c, rankDate, EntityDate, text, start, end, t.Format(isoDate))
}

func findDates(c []entityCandidate, text string, now time.Time) []entityCandidate {
	loc := now.Location()
	for _, m := range dateISORe.FindAllStringSubmatchIndex(text, -1) {
		if !standsAlone(text, m[0], m[1]) {
			continue
		}
		y, _ := strconv.Atoi(text[m[2]:m[3]])
		if t, ok := validDate(y, smallCount(text[m[4]:m[5]]), smallCount(text[m[6]:m[7]]), loc); ok {
			c = addDate(c, text, m[0], m[1], t)
		}
	}
	for _, m := range dateSlashRe.FindAllStringSubmatchIndex(text, -1) {
		if !standsAlone(text, m[0], m[1]) || strings.ContainsRune("/.-", runeBefore(text, m[0])) || strings.ContainsRune("/", runeAfter(text, m[1])) {
			continue
		}
		if rest := strings.ToLower(text[m[1]:]); strings.HasPrefix(rest, " of ") || strings.HasPrefix(rest, "的") {
			continue // 1/2 of them, 1/3的: a fraction
		}
		a, b := smallCount(text[m[2]:m[3]]), smallCount(text[m[4]:m[5]])
		year := ""
		if m[6] >= 0 {
			year = text[m[6]:m[7]]
		}
		if a > 12 && year != "" {
			a, b = b, a // 28/11/2026: day first
		}
		if t, ok := dateWith(now, year, a, b); ok {
			c = addDate(c, text, m[0], m[1], t)
		}
	}
	for _, m := range dateZhRe.FindAllStringSubmatchIndex(text, -1) {
		if isWordRune(runeBefore(text, m[0])) {
			continue
		}
		year := ""
		if m[2] >= 0 {
			year = text[m[2]:m[3]]
		}
		if t, ok := dateWith(now, year, smallCount(text[m[4]:m[5]]), smallCount(text[m[6]:m[7]])); ok {
			c = addDate(c, text, m[0], m[1], t)
		}
	}
	for _, re := range []*regexp.Regexp{dateMonthRe, dateDayRe} {
		for _, m := range re.FindAllStringSubmatchIndex(text, -1) {
			monthAt, dayAt := 2, 4
			if re == dateDayRe {
				monthAt, dayAt = 4, 2
			}
			name := text[m[monthAt]:m[monthAt+1]]
			if name == "may" && re == dateMonthRe {
				continue // "may 2 of them" is the verb; the month is written May
			}
			year := ""
			if m[6] >= 0 {
				year = text[m[6]:m[7]]
			}
			if t, ok := dateWith(now, year, int(monthByPrefix[strings.ToLower(name[:3])]), smallCount(text[m[dayAt]:m[dayAt+1]])); ok {
				c = addDate(c, text, m[0], m[1], t)
			}
		}
	}

	for _, m := range dateZhDayRe.FindAllStringIndex(text, -1) {
		n := zhDayOffset[text[m[0]:m[1]]]
		c = addDate(c, text, m[0], m[1], dayFrom(now, n))
	}
	for _, m := range dateZhWeekdayRe.FindAllStringSubmatchIndex(text, -1) {
		// 一周三次 is "three times a week", 每周一 "every Monday": neither is a date.
		if m[2] < 0 && (strings.ContainsRune("一二两三四五六七八九十几每0123456789", runeBefore(text, m[0])) || runeAfter(text, m[1]) == '次') {
			continue
		}
		t := upcomingWeekday(now, weekdayByName[text[m[4]:m[5]]])
		if m[2] >= 0 {
			weeks := zhWeekOffset[text[m[2]:m[3]]]
			t = weekdayInWeek(now, weeks, weekdayByName[text[m[4]:m[5]]])
		}
		c = addDate(c, text, m[0], m[1], t)
	}
	for _, m := range dateZhAfterRe.FindAllStringSubmatchIndex(text, -1) {
		if isWordRune(runeBefore(text, m[0])) {
			continue
		}
		n := smallCount(text[m[2]:m[3]])
		if n < 0 || n > 3660 {
			continue
		}
		if u := text[m[4]:m[5]]; u != "天" && u != "日" {
			n *= 7
		}
		if strings.HasSuffix(text[m[6]:m[7]], "前") {
			n = -n
		}
		c = addDate(c, text, m[0], m[1], dayFrom(now, n))
	}

	for _, m := range dateEnDayRe.FindAllStringIndex(text, -1) {
		s := strings.ToLower(text[m[0]:m[1]])
		n := 0
		switch {
		case strings.HasSuffix(s, "after tomorrow"):
			n = 2
		case strings.HasSuffix(s, "before yesterday"):
			n = -2
		case strings.HasPrefix(s, "tom"), strings.HasPrefix(s, "tm"):
			n = 1
		case s == "yesterday":
			n = -1
		}
		c = addDate(c, text, m[0], m[1], dayFrom(now, n))
	}
	for _, m := range dateEnWeekdayRe.FindAllStringSubmatchIndex(text, -1) {
		name := strings.ToLower(text[m[4]:m[5]])
		if len(name) <= 5 && !strings.HasSuffix(name, "day") && m[2] < 0 {
			continue // "sat", "sun", "wed" alone are words more often than days
		}
		w := weekdayByName[name[:3]]
		prefix := ""
		if m[2] >= 0 {
			prefix = strings.ToLower(text[m[2]:m[3]])
		}
		var t time.Time
		switch prefix {
		case "next": // the day in next Monday-to-Sunday week, as 下周X
			t = weekdayInWeek(now, 1, w)
		case "last":
			t = previousWeekday(now, w)
		default: // this, coming, or a bare day: the first one from today on
			t = upcomingWeekday(now, w)
		}
		c = addDate(c, text, m[0], m[1], t)
	}
	for _, re := range []*regexp.Regexp{dateEnInRe, dateEnAgoRe} {
		for _, m := range re.FindAllStringSubmatchIndex(text, -1) {
			n := smallCount(text[m[2]:m[3]])
			if n < 0 || n > 3660 {
				continue
			}
			if strings.HasPrefix(strings.ToLower(text[m[4]:m[5]]), "week") {
				n *= 7
			}
			if re == dateEnAgoRe && strings.EqualFold(text[m[6]:m[7]], "ago") {
				n = -n
			}
			c = addDate(c, text, m[0], m[1], dayFrom(now, n))
		}
	}
	return c
}

// ---- quantities ----

var (
	// quantityZhRe counts with a measure word. 个月, 个小时 and the like are durations.
	quantityZhRe  = regexp.MustCompile(`(\d{1,6}|` + zhNumeral + `)\s?([` + quantityWords + `])`)
	quantityEnRe  = regexp.MustCompile(`(?i)\b(\d{1,6}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\s?(pcs|pc|pieces?|items?|units?|boxes|box|pairs?|packs?|packages?|bottles?|sets?|copies|copy|cartons?|bags?|cans?)\b`)
	quantityXRe   = regexp.MustCompile(`[x×](\d{1,4})`) // x2; "X 2" is too often a model name
	quantityQtyRe = regexp.MustCompile(`((?i:\bqty|\bquantity)|数量)\s*[:：]?\s*(\d{1,6})`)
)

func addQuantity(c []entityCandidate, text string, start, end int, n string) []entityCandidate {
	v, ok := parseCount(n)
	if !ok || v <= 0 {
		return c
	}
	return addEntity(c, rankQuantity, EntityQuantity, text, start, end, strconv.FormatInt(v, 10))
}

func findQuantities(c []entityCandidate, text string, _ time.Time) []entityCandidate {
	for _, m := range quantityZhRe.FindAllStringSubmatchIndex(text, -1) {
		prev := runeBefore(text, m[0])
		if isWordRune(prev) || prev == '.' || prev == '第' {
			continue
		}
		rest := text[m[5]:]
		if text[m[4]:m[5]] == "个" && (hasAnyPrefix(rest, "月", "小时", "钟头", "工作日", "星期", "礼拜", "周", "半月")) {
			continue
		}
		// 三块五一个 leaves 五一个 once 三块五 is taken: the count is the longest tail that reads.
		start := m[0]
		for start < m[3] {
			if _, ok := parseCount(text[start:m[3]]); ok {
				break
			}
			_, size := utf8.DecodeRuneInString(text[start:])
			start += size
		}
		if start < m[3] {
			c = addQuantity(c, text, start, m[1], text[start:m[3]])
		}
	}
	for _, m := range quantityEnRe.FindAllStringSubmatchIndex(text, -1) {
		if runeBefore(text, m[0]) == '.' {
			continue
		}
		c = addQuantity(c, text, m[0], m[1], text[m[2]:m[3]])
	}
	for _, m := range quantityXRe.FindAllStringSubmatchIndex(text, -1) {
		if !standsAlone(text, m[0], m[1]) {
			continue
		}
		c = addQuantity(c, text, m[0], m[1], text[m[2]:m[3]])
	}
	for _, m := range quantityQtyRe.FindAllStringSubmatchIndex(text, -1) {
		if isWordRune(runeAfter(text, m[1])) {
			continue
		}
		c = addQuantity(c, text, m[0], m[1], text[m[4]:m[5]])
	}
	return c
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	return slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(s, p) })
}
