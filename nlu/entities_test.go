package nlu_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Asia/Shanghai on machines without a zoneinfo database

	"github.com/kefu-dev/kefu/nlu"
)

// entityNow is the reference time of the tests: Friday 27 November 2026, 15:00 in Shanghai.
func entityNow(t testing.TB) time.Time {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	return time.Date(2026, 11, 27, 15, 0, 0, 0, loc)
}

// found is an expected entity; its offsets are where Text next occurs in the message.
type found struct{ Type, Text, Value string }

// locate turns expectations into entities by finding each Text after the previous one.
func locate(t *testing.T, in string, want []found) []nlu.Entity {
	t.Helper()
	var out []nlu.Entity
	from := 0
	for _, w := range want {
		i := strings.Index(in[from:], w.Text)
		if i < 0 {
			t.Fatalf("bad test case: %q does not contain %q after byte %d", in, w.Text, from)
		}
		start := from + i
		out = append(out, nlu.Entity{Type: w.Type, Text: w.Text, Start: start, End: start + len(w.Text), Value: w.Value})
		from = start + len(w.Text)
	}
	return out
}

func TestExtractEntities(t *testing.T) {
	t.Parallel()
	const (
		order    = nlu.EntityOrderNumber
		phone    = nlu.EntityPhone
		email    = nlu.EntityEmail
		amount   = nlu.EntityAmount
		date     = nlu.EntityDate
		quantity = nlu.EntityQuantity
	)
	tests := []struct {
		name string
		in   string
		want []found
	}{
		// Order numbers.
		{"OrderZh", "订单号 A-1029 还没发货", []found{{order, "A-1029", "A-1029"}}},
		{"OrderZhColon", "我的单号：so20261127001，麻烦查一下", []found{{order, "so20261127001", "SO20261127001"}}},
		{"OrderZhBare", "订单12345678什么时候到", []found{{order, "12345678", "12345678"}}},
		{"OrderEnHash", "Where is order #12345678?", []found{{order, "12345678", "12345678"}}},
		{"OrderEnNo", "order no. SO20261127001 was charged twice", []found{{order, "SO20261127001", "SO20261127001"}}},
		{"OrderEnSpaced", "My order number is SO 20261127001.", []found{{order, "SO 20261127001", "SO20261127001"}}},
		{"OrderZhNo", "订单号：No.12345", []found{{order, "12345", "12345"}}},
		{"OrderHashAlone", "Any news on #A1029-B?", []found{{order, "A1029-B", "A1029-B"}}},
		{"OrderVerbIsNotCue", "I want to order 100 units", []found{{quantity, "100 units", "100"}}},
		{"BareNumberIsNotOrder", "I waited 12345 seconds", nil},
		{"OrderShortNumber", "order 12 is wrong", nil},

		// Phone numbers.
		{"PhoneCNMobile", "我的手机13812345678", []found{{phone, "13812345678", "+8613812345678"}}},
		{"PhoneCNSpaced", "call +86 138 1234 5678 after 6", []found{{phone, "+86 138 1234 5678", "+8613812345678"}}},
		{"PhoneCNLandline", "座机010-12345678，工作日可打", []found{{phone, "010-12345678", "+861012345678"}}},
		{"PhoneCNDashes", "电话138-1234-5678", []found{{phone, "138-1234-5678", "+8613812345678"}}},
		{"PhoneUS", "Reach me at +1 415 555 0123 tomorrow", []found{{phone, "+1 415 555 0123", "+14155550123"}, {date, "tomorrow", "2026-11-28"}}},
		{"PhoneUSNational", "my number is (415) 555-0123", []found{{phone, "(415) 555-0123", "+14155550123"}}},
		{"PhoneTrailingCount", "+1 415 555 0123 2 items", []found{{phone, "+1 415 555 0123", "+14155550123"}, {quantity, "2 items", "2"}}},
		{"PhoneUK", "ring +44 20 7946 0958", []found{{phone, "+44 20 7946 0958", "+442079460958"}}},
		{"PhoneCNService", "客服电话400-820-8820", []found{{phone, "400-820-8820", "+864008208820"}}},
		{"PhoneTooLong", "138123456789", nil},

		// E-mail.
		{"EmailEn", "Send it to Li.Wei+shop@Example.COM.", []found{{email, "Li.Wei+shop@Example.COM", "li.wei+shop@example.com"}}},
		{"EmailZh", "邮箱是zhang_san@qq.com谢谢", []found{{email, "zhang_san@qq.com", "zhang_san@qq.com"}}},
		{"EmailDigitsNotPhone", "13812345678@163.com", []found{{email, "13812345678@163.com", "13812345678@163.com"}}},

		// Amounts.
		{"AmountYenSign", "退我¥59", []found{{amount, "¥59", "59.00 CNY"}}},
		{"AmountYuan", "运费59元太贵", []found{{amount, "59元", "59.00 CNY"}}},
		{"AmountKuai", "才59.9块", []found{{amount, "59.9块", "59.90 CNY"}}},
		{"AmountRMBPrefix", "付了人民币100", []found{{amount, "人民币100", "100.00 CNY"}}},
		{"AmountChineseNumerals", "补偿一百元", []found{{amount, "一百元", "100.00 CNY"}}},
		{"AmountChineseDecimal", "差价两千五百块钱", []found{{amount, "两千五百块钱", "2500.00 CNY"}}},
		{"AmountChineseShorthand", "一百五元", []found{{amount, "一百五元", "150.00 CNY"}}},
		{"AmountDollarSign", "I was charged $12.50 twice", []found{{amount, "$12.50", "12.50 USD"}}},
		{"AmountCodeSuffix", "refund 12.50 USD please", []found{{amount, "12.50 USD", "12.50 USD"}}},
		{"AmountDollars", "it cost 100 dollars", []found{{amount, "100 dollars", "100.00 USD"}}},
		{"AmountEuro", "only €5", []found{{amount, "€5", "5.00 EUR"}}},
		{"AmountThousands", "a $1,299.00 laptop", []found{{amount, "$1,299.00", "1299.00 USD"}}},
		{"AmountSpokenDimes", "三块五一个", []found{{amount, "三块五", "3.50 CNY"}, {quantity, "一个", "1"}}},
		{"AmountYuanJiao", "5元5角", []found{{amount, "5元5角", "5.50 CNY"}}},
		{"AmountThenCount", "5块2个", []found{{amount, "5块", "5.00 CNY"}, {quantity, "2个", "2"}}},
		{"KuaiCountsCake", "两块蛋糕", []found{{quantity, "两块", "2"}}},

		// Absolute dates.
		{"DateISO", "delivered on 2026-11-28?", []found{{date, "2026-11-28", "2026-11-28"}}},
		{"DateZhMonthDay", "11月28日能到吗", []found{{date, "11月28日", "2026-11-28"}}},
		{"DateZhWithYear", "2026年12月1号下单", []found{{date, "2026年12月1号", "2026-12-01"}}},
		{"DateZhNumerals", "十二月三日", []found{{date, "十二月三日", "2026-12-03"}}},
		{"DateZhNextYear", "1月5日", []found{{date, "1月5日", "2027-01-05"}}},
		{"DateSlash", "ordered 11/20, still not here", []found{{date, "11/20", "2026-11-20"}}},
		{"DateMonthName", "arrives Nov 28", []found{{date, "Nov 28", "2026-11-28"}}},
		{"DateMonthNameYear", "since December 1st, 2026", []found{{date, "December 1st, 2026", "2026-12-01"}}},
		{"DateDayMonth", "on 3 Jan", []found{{date, "3 Jan", "2027-01-03"}}},
		{"FractionIsNotDate", "I need 1/2 of them", nil},
		{"DateInvalid", "2026-02-30 and 13/45", nil},
		{"MayIsAVerb", "may 2 of them be swapped", nil},

		// Relative dates in Chinese.
		{"ZhToday", "今天能发货吗", []found{{date, "今天", "2026-11-27"}}},
		{"ZhTomorrow", "明天送到", []found{{date, "明天", "2026-11-28"}}},
		{"ZhDayAfterTomorrow", "后天", []found{{date, "后天", "2026-11-29"}}},
		{"ZhInThreeDays", "大后天", []found{{date, "大后天", "2026-11-30"}}},
		{"ZhYesterday", "昨天下的单", []found{{date, "昨天", "2026-11-26"}}},
		{"ZhNextMonday", "下周一再说", []found{{date, "下周一", "2026-11-30"}}},
		{"ZhFriday", "周五之前", []found{{date, "周五", "2026-11-27"}}},
		{"ZhSunday", "星期天有人吗", []found{{date, "星期天", "2026-11-29"}}},
		{"ZhLastFriday", "上周五买的", []found{{date, "上周五", "2026-11-20"}}},
		{"ZhThisMonday", "这周一", []found{{date, "这周一", "2026-11-23"}}},
		{"ZhDaysLater", "3天后", []found{{date, "3天后", "2026-11-30"}}},
		{"ZhDaysLaterNumerals", "三天后", []found{{date, "三天后", "2026-11-30"}}},
		{"ZhDaysAgo", "两天前签收了", []found{{date, "两天前", "2026-11-25"}}},
		{"ZhWeeksLater", "两周后", []found{{date, "两周后", "2026-12-11"}}},
		{"ZhTimesAWeek", "一周三次", nil},

		// Relative dates in English.
		{"EnToday", "Can it ship today?", []found{{date, "today", "2026-11-27"}}},
		{"EnTomorrow", "Tomorrow works", []found{{date, "Tomorrow", "2026-11-28"}}},
		{"EnDayAfterTomorrow", "the day after tomorrow", []found{{date, "the day after tomorrow", "2026-11-29"}}},
		{"EnYesterday", "it came yesterday", []found{{date, "yesterday", "2026-11-26"}}},
		{"EnNextMonday", "next Monday please", []found{{date, "next Monday", "2026-11-30"}}},
		{"EnNextSaturday", "next Saturday", []found{{date, "next Saturday", "2026-12-05"}}},
		{"EnThisFriday", "this Friday", []found{{date, "this Friday", "2026-11-27"}}},
		{"EnBareWeekday", "by Tuesday", []found{{date, "Tuesday", "2026-12-01"}}},
		{"EnLastFriday", "I ordered last Friday", []found{{date, "last Friday", "2026-11-20"}}},
		{"EnInDays", "in 3 days", []found{{date, "in 3 days", "2026-11-30"}}},
		{"EnInAWeek", "in a week", []found{{date, "in a week", "2026-12-04"}}},
		{"EnDaysAgo", "two days ago", []found{{date, "two days ago", "2026-11-25"}}},
		{"EnNextWeekAbbrev", "next wed", []found{{date, "next wed", "2026-12-02"}}},
		{"EnSunIsAWord", "the sun is out, I sat down", nil},

		// Quantities.
		{"ZhPieces", "买了3件", []found{{quantity, "3件", "3"}}},
		{"ZhTwo", "要两个", []found{{quantity, "两个", "2"}}},
		{"ZhMonthsIsDuration", "用了3个月", nil},
		{"ZhOrdinal", "第3件坏了", nil},
		{"EnPcs", "send 2 pcs", []found{{quantity, "2 pcs", "2"}}},
		{"EnItems", "3 items missing", []found{{quantity, "3 items", "3"}}},
		{"EnTimes", "USB cable x2", []found{{quantity, "x2", "2"}}},
		{"EnQty", "qty: 4", []found{{quantity, "qty: 4", "4"}}},
		{"EnCasesAreNotCounted", "in 2 cases it failed", nil},
		{"EnModelIsNotQuantity", "my iPhone X 2 years old", nil},
		{"EnResolutionIsNotQuantity", "1920x1080 screen", nil},

		// Ordinary sentences and mixed messages.
		{"NoEntities", "你好，我想问一下退货流程", nil},
		{"QuestionsNotQuantity", "I have 2 questions about my refund", nil},
		{"Empty", "", nil},
		{"MixedZh", "订单号SO20261127001买了2件，共¥118，明天能送到吗？电话13812345678", []found{
			{order, "SO20261127001", "SO20261127001"},
			{quantity, "2件", "2"},
			{amount, "¥118", "118.00 CNY"},
			{date, "明天", "2026-11-28"},
			{phone, "13812345678", "+8613812345678"},
		}},
		{"MixedEn", "Order #A-1029: 3 items, $59.90, email bob@shop.io by next Monday", []found{
			{order, "A-1029", "A-1029"},
			{quantity, "3 items", "3"},
			{amount, "$59.90", "59.90 USD"},
			{email, "bob@shop.io", "bob@shop.io"},
			{date, "next Monday", "2026-11-30"},
		}},
		{"OrderBeatsPhone", "订单号 13812345678", []found{{order, "13812345678", "13812345678"}}},
	}
	now := entityNow(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := locate(t, tt.in, tt.want)
			if got := nlu.Extract(tt.in, now); !slices.Equal(got, want) {
				t.Errorf("Extract(%q) = %v, want %v", tt.in, got, want)
			}
		})
	}
}

// TestExtractEntitiesLocation checks that dates are calendar days where now is, not in UTC.
func TestExtractEntitiesLocation(t *testing.T) {
	t.Parallel()
	// 00:30 on Saturday in Shanghai is still Friday in UTC.
	now := time.Date(2026, 11, 28, 0, 30, 0, 0, entityNow(t).Location())
	in := "tomorrow"
	want := []nlu.Entity{{Type: nlu.EntityDate, Text: in, Start: 0, End: len(in), Value: "2026-11-29"}}
	if got := nlu.Extract(in, now); !slices.Equal(got, want) {
		t.Errorf("Extract(%q) = %v, want %v", in, got, want)
	}
}

func FuzzExtract(f *testing.F) {
	for _, s := range []string{
		"订单号 A-1029 明天能到吗", "order #12345678, call +1 415 555 0123", "+86 138 1234 5678",
		"¥59 59元 59.9块 人民币100 一百五元", "$1,299.00 12.50 USD €5", "11月28日 2026-11-28 11/28 Nov 28",
		"下周一 上周五 3天后 两周后", "next Monday in 3 days the day after tomorrow", "3件 两个 2 pcs x2 qty: 4",
		"a@b.co", "+", "订单", "#", "\xff\xfe订单号\xff", "", "🙂 1/2 ＡＢＣ",
	} {
		f.Add(s)
	}
	now := entityNow(f)
	f.Fuzz(func(t *testing.T, s string) {
		got := nlu.Extract(s, now)
		end := 0
		for _, e := range got {
			if e.Start < end || e.End <= e.Start || e.End > len(s) {
				t.Fatalf("Extract(%q) = %v: %v is out of order, empty or out of bounds", s, got, e)
			}
			if e.Text != s[e.Start:e.End] || e.Value == "" || e.Type == "" {
				t.Fatalf("Extract(%q) = %v: %v does not match its span or lacks a value", s, got, e)
			}
			end = e.End
		}
		if again := nlu.Extract(s, now); !slices.Equal(got, again) {
			t.Fatalf("Extract(%q) = %v, then %v: not deterministic", s, got, again)
		}
	})
}

func ExampleExtract() {
	now := time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC) // a Friday
	for _, e := range nlu.Extract("订单号 A-1029 买了两件，共¥118，下周一送到 13812345678", now) {
		fmt.Println(e.Type, e.Value)
	}
	// Output:
	// order_number A-1029
	// quantity 2
	// amount 118.00 CNY
	// date 2026-11-30
	// phone +8613812345678
}

func BenchmarkExtract(b *testing.B) {
	now := entityNow(b)
	msgs := []string{
		"订单号SO20261127001买了2件，共¥118，明天能送到吗？电话13812345678",
		"Order #A-1029: 3 items, $59.90, email bob@shop.io by next Monday",
		"你好，我想问一下退货流程",
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, m := range msgs {
			nlu.Extract(m, now)
		}
	}
}
