package retrieval

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kefu-dev/kefu"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// want is an expected chunk: its heading path and text.
type want struct {
	heading []string
	text    string
}

func h(path ...string) []string { return path }

func checkChunks(t *testing.T, src string, got []Chunk, wants []want) {
	t.Helper()
	for i, c := range got {
		if i >= len(wants) {
			t.Errorf("extra chunk %d %q: %q", i, c.Heading, c.Text)
			continue
		}
		if !slices.Equal(c.Heading, wants[i].heading) || c.Text != wants[i].text {
			t.Errorf("chunk %d:\n got %q %q\nwant %q %q", i, c.Heading, c.Text, wants[i].heading, wants[i].text)
		}
	}
	for i := len(got); i < len(wants); i++ {
		t.Errorf("missing chunk %d %q: %q", i, wants[i].heading, wants[i].text)
	}
	checkInvariants(t, src, got, DefaultMaxRunes, DefaultOverlapRunes)
}

// checkInvariants holds for every split: indexes in order, no empty text, no chunk over
// maxRunes+overlap, valid UTF-8, spans inside the source, no empty heading.
func checkInvariants(t *testing.T, src string, chunks []Chunk, maxRunes, overlap int) {
	t.Helper()
	for i, c := range chunks {
		if c.Index != i {
			t.Errorf("chunk %d has Index %d", i, c.Index)
		}
		if strings.TrimSpace(c.Text) == "" {
			t.Errorf("chunk %d is empty", i)
		}
		if n := utf8.RuneCountInString(c.Text); n > maxRunes+max(overlap, 0) {
			t.Errorf("chunk %d has %d runes, over %d+%d", i, n, maxRunes, overlap)
		}
		if !utf8.ValidString(c.Text) {
			t.Errorf("chunk %d is not UTF-8: %q", i, c.Text)
		}
		if c.Start < 0 || c.End < c.Start || c.End > len(src) || c.End == 0 && c.Start != 0 {
			t.Errorf("chunk %d spans [%d,%d) of %d bytes", i, c.Start, c.End, len(src))
		}
		for _, hd := range c.Heading {
			if strings.TrimSpace(hd) == "" {
				t.Errorf("chunk %d has an empty heading in %q", i, c.Heading)
			}
		}
	}
}

// covers fails the test for each sentence that no chunk or heading holds. White space is
// ignored: the splitter drops a space between two CJK characters.
func covers(t *testing.T, chunks []Chunk, sentences []string) {
	t.Helper()
	noSpace := func(s string) string { return strings.Join(strings.Fields(s), "") }
	var all []string
	for _, c := range chunks {
		all = append(all, noSpace(c.Text))
		for _, hd := range c.Heading {
			all = append(all, noSpace(hd))
		}
	}
	for _, s := range sentences {
		if s = noSpace(s); s != "" && !slices.ContainsFunc(all, func(c string) bool { return strings.Contains(c, s) }) {
			t.Errorf("no chunk holds %q", s)
		}
	}
}

const returnsMarkdown = `---
title: Returns and refunds
updated: 2025-05-01
---

# Returns and refunds

<!-- internal: reviewed by the support team -->

Unused items with tags attached can be returned within 7 days of delivery. No reason is needed.

## How to return an item

1. Open the order under **My orders**.
2. Choose [Request return](https://shop.example/returns) and pick a reason.
3. Send the parcel to the address shown once the return is approved.

![Return button](img/return.png)

## Who pays for shipping

| Reason | Who pays |
| --- | --- |
| Quality problem | We do |
| Changed your mind | You do |

## Refunds

### Refund timing

We issue the refund within 1 business day after the warehouse checks the return.
Bank cards take 3-7 business days; see https://shop.example/refunds for details.

### Empty section

## Contact

Call ` + "`400-800-1234`" + ` from 9:00 to 21:00 &amp; ask for \*returns\*.
`

const returnsMarkdownZH = `# 退货政策

签收后7天内，商品未使用且吊牌完好，
可申请七天无理由退货。

退货流程
--------

- 在“我的订单”中选择该订单
- 点击“申请退货”，填写原因
  - 质量问题请上传照片

## 运费

| 情况 | 运费承担 |
|------|----------|
| 质量问题 | 本店 |
| 非质量问题 | 买家 |

## 退款时效

仓库验收后1个工作日内发起退款。微信、支付宝一般即时到账，银行卡3-7个工作日到账。

` + "```" + `
退货地址：浙江省杭州市余杭区
` + "```" + `
`

func TestSplitMarkdown(t *testing.T) {
	for _, tc := range []struct {
		name  string
		src   string
		wants []want
	}{
		{"English", returnsMarkdown, []want{
			{h("Returns and refunds"), "Unused items with tags attached can be returned within 7 days of delivery. No reason is needed."},
			{h("Returns and refunds", "How to return an item"), "1. Open the order under My orders.\n2. Choose Request return and pick a reason.\n3. Send the parcel to the address shown once the return is approved."},
			{h("Returns and refunds", "Who pays for shipping"), "Reason | Who pays\nQuality problem | We do\nChanged your mind | You do"},
			{h("Returns and refunds", "Refunds", "Refund timing"), "We issue the refund within 1 business day after the warehouse checks the return. Bank cards take 3-7 business days; see https://shop.example/refunds for details."},
			{h("Returns and refunds", "Contact"), "Call 400-800-1234 from 9:00 to 21:00 & ask for *returns*."},
		}},
		{"Chinese", returnsMarkdownZH, []want{
			{h("退货政策"), "签收后7天内，商品未使用且吊牌完好，可申请七天无理由退货。"},
			{h("退货政策", "退货流程"), "在“我的订单”中选择该订单\n点击“申请退货”，填写原因\n质量问题请上传照片"},
			{h("退货政策", "运费"), "情况 | 运费承担\n质量问题 | 本店\n非质量问题 | 买家"},
			{h("退货政策", "退款时效"), "仓库验收后1个工作日内发起退款。微信、支付宝一般即时到账，银行卡3-7个工作日到账。\n退货地址：浙江省杭州市余杭区"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, format := range []string{"markdown", "md", " Markdown "} {
				got, err := SplitDocument(format, []byte(tc.src), ChunkOptions{})
				if err != nil {
					t.Fatal(err)
				}
				checkChunks(t, tc.src, got, tc.wants)
			}
		})
	}

	got, _ := SplitDocument("markdown", []byte(returnsMarkdown), ChunkOptions{})
	for _, noise := range []string{"title:", "2025-05-01", "internal", "https://shop.example/returns", "img/return.png", "Return button", "Empty section", "**", "`"} {
		for _, c := range got {
			if strings.Contains(c.Text, noise) || slices.Contains(c.Heading, noise) {
				t.Errorf("chunk %d keeps %q: %q", c.Index, noise, c.Text)
			}
		}
	}
	// The paragraph without markup is a verbatim slice of the source, and its span says where.
	if c := got[0]; returnsMarkdown[c.Start:c.End] != c.Text {
		t.Errorf("chunk 0 spans %q", returnsMarkdown[c.Start:c.End])
	}
	if c := got[3]; !strings.HasPrefix(returnsMarkdown[c.Start:c.End], "We issue the refund") || !strings.HasSuffix(returnsMarkdown[c.Start:c.End], "for details.") {
		t.Errorf("chunk 3 spans %q", returnsMarkdown[c.Start:c.End])
	}
}

// Consecutive units of one section share a chunk while they fit; a unit never straddles two.
func TestSplitPacksUnits(t *testing.T) {
	para := func(i int) string { return fmt.Sprintf("Paragraph %d has exactly thirty runes.", i)[:30] }
	var src strings.Builder
	src.WriteString("# Packing\n\n")
	for i := range 5 {
		src.WriteString(para(i) + "\n\n")
	}
	src.WriteString("# Next\n\n" + para(5) + "\n")
	got, err := SplitDocument("markdown", []byte(src.String()), ChunkOptions{MaxRunes: 70, OverlapRunes: -1})
	if err != nil {
		t.Fatal(err)
	}
	checkChunks(t, src.String(), got, []want{
		{h("Packing"), para(0) + "\n" + para(1)},
		{h("Packing"), para(2) + "\n" + para(3)},
		{h("Packing"), para(4)},
		{h("Next"), para(5)},
	})
}

const helpPage = `<!DOCTYPE html>
<html><head><title>Returns | Shop</title><style>p { color: red }</style>
<script>var tracking = "do not index";</script></head>
<body>
<header><nav><a href="/">Home</a> <a href="/help">Help</a></nav></header>
<div class="cookie" hidden>We use cookies.</div>
<main>
<h1>Returns &amp; refunds</h1>
<p>Unused items can be returned
   within <b>7 days</b> of delivery.&nbsp;No reason is needed.</p>
<div>Questions? Call 400-800-1234.<br>We answer every day.</div>
<h2>How to return</h2>
<ol><li>Open <a href="/orders">My orders</a>.</li><li><p>Click &ldquo;Request return&rdquo;.</p></li></ol>
<h2>Fees</h2>
<table><tr><th>Reason</th><th>Who pays</th></tr>
<tr><td>Quality problem</td><td>We do</td></tr>
<tr><td>Changed your mind</td><td>You do</td></tr></table>
<h3>Empty</h3>
<h2>Address</h2>
<pre>Kefu Shop Returns
  Hangzhou</pre>
<div role="navigation">Prev | Next</div>
</main>
<aside>Related: exchanges</aside>
<footer>&copy; 2025 Shop</footer>
<noscript>Enable JavaScript</noscript>
</body></html>`

const helpPageZH = `<html><body><nav>首页 &gt; 帮助中心</nav>
<article><header><h1>退款时效</h1></header>
<p>仓库验收后1个工作日内发起退款。
原路退回。</p>
<ul><li>微信、支付宝：一般即时到账</li><li>银行卡：3-7个工作日</li></ul>
<section><h2>取消订单</h2><p>取消未发货订单的退款会立即发起。</p></section>
<footer>本文更新于2025年5月</footer></article>
<script>alert("广告")</script></body></html>`

func TestSplitHTML(t *testing.T) {
	for _, tc := range []struct {
		name  string
		src   string
		wants []want
	}{
		{"English", helpPage, []want{
			{h("Returns & refunds"), "Unused items can be returned within 7 days of delivery. No reason is needed.\nQuestions? Call 400-800-1234.\nWe answer every day."},
			{h("Returns & refunds", "How to return"), "1. Open My orders.\n2. Click “Request return”."},
			{h("Returns & refunds", "Fees"), "Reason | Who pays\nQuality problem | We do\nChanged your mind | You do"},
			{h("Returns & refunds", "Address"), "Kefu Shop Returns\n  Hangzhou"},
		}},
		{"Chinese", helpPageZH, []want{
			{h("退款时效"), "仓库验收后1个工作日内发起退款。原路退回。\n微信、支付宝：一般即时到账\n银行卡：3-7个工作日"},
			{h("退款时效", "取消订单"), "取消未发货订单的退款会立即发起。\n本文更新于2025年5月"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SplitDocument("html", []byte(tc.src), ChunkOptions{})
			if err != nil {
				t.Fatal(err)
			}
			checkChunks(t, tc.src, got, tc.wants)
		})
	}

	got, _ := SplitDocument("html", []byte(helpPage), ChunkOptions{})
	for _, noise := range []string{"Returns | Shop", "color", "tracking", "Home", "cookies", "Prev", "Related", "2025", "JavaScript", "&amp;"} {
		for _, c := range got {
			if strings.Contains(c.Text, noise) || strings.Contains(strings.Join(c.Heading, " "), noise) {
				t.Errorf("chunk %d keeps %q: %q", c.Index, noise, c.Text)
			}
		}
	}
	// Spans point at the source text they came from.
	if c := got[0]; !strings.HasPrefix(helpPage[c.Start:], "Unused items") || !strings.HasSuffix(helpPage[:c.End], "every day.") {
		t.Errorf("chunk 0 spans %q", helpPage[c.Start:c.End])
	}
	if c := got[3]; helpPage[c.Start:c.End] != c.Text {
		t.Errorf("the pre chunk spans %q, want its text verbatim", helpPage[c.Start:c.End])
	}
}

const policyText = "退货政策\r\n\r\n" +
	"一、退货条件\r\n签收后7天内，商品未使用且吊牌完好，可申请七天无理由退货。\r\n定制商品不支持无理由退货。\r\n" +
	"二、退货流程\r\n在“我的订单”中选择该订单，点击“申请退货”。\r\n\r\n" +
	"　　审核通过后按页面地址寄回。\r\n"

const policyTextEN = `RETURNS

Unused items with tags attached can be returned within 7 days of delivery.

Steps:
1. Open the order.
2. Click Request return.

1. Refunds

We refund within 1 business day after checking the return.

2. Exchanges

Exchanges are free the first time.

3. Contact
`

func TestSplitText(t *testing.T) {
	for _, tc := range []struct {
		name  string
		src   string
		wants []want
	}{
		{"Chinese", policyText, []want{
			{h("退货政策", "一、退货条件"), "签收后7天内，商品未使用且吊牌完好，可申请七天无理由退货。\n定制商品不支持无理由退货。"},
			{h("退货政策", "二、退货流程"), "在“我的订单”中选择该订单，点击“申请退货”。\n审核通过后按页面地址寄回。"},
		}},
		{"English", policyTextEN, []want{
			{h("RETURNS"), "Unused items with tags attached can be returned within 7 days of delivery.\nSteps:\n1. Open the order.\n2. Click Request return."},
			{h("RETURNS", "1. Refunds"), "We refund within 1 business day after checking the return."},
			{h("RETURNS", "2. Exchanges"), "Exchanges are free the first time.\n3. Contact"},
		}},
		{"a list is not headings", "Steps\n\n1. Open the order\n\n2. Click Request return\n\nThat is all.\n", []want{
			{h("Steps"), "1. Open the order\n2. Click Request return\nThat is all."},
		}},
		{"no headings", "Hello there.\nSecond line.\n\nThanks", []want{
			{nil, "Hello there.\nSecond line.\nThanks"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SplitDocument("text", []byte(tc.src), ChunkOptions{})
			if err != nil {
				t.Fatal(err)
			}
			checkChunks(t, tc.src, got, tc.wants)
		})
	}
	// A verbatim paragraph's span is exact.
	got, _ := SplitDocument("text", []byte(policyTextEN), ChunkOptions{MaxRunes: 60, OverlapRunes: -1})
	for _, c := range got {
		if c.End > 0 && policyTextEN[c.Start:c.End] != c.Text && !strings.Contains(c.Text, "\n") {
			t.Errorf("chunk %q spans %q", c.Text, policyTextEN[c.Start:c.End])
		}
	}
}

func TestSplitLongUnit(t *testing.T) {
	en := make([]string, 10)
	for i := range en {
		en[i] = fmt.Sprintf("Sentence %02d is here.", i) // 20 runes
	}
	zh := make([]string, 12)
	for i := range zh {
		zh[i] = fmt.Sprintf("这是第%02d句测试文字。", i) // 11 runes
	}
	hanRun := "" // 100 different Han characters, no punctuation
	for i := range 100 {
		hanRun += string(rune(0x4E00 + i*7))
	}
	han := []rune(hanRun)
	words := make([]string, 10)
	for i := range words {
		words[i] = strings.Repeat(string(rune('a'+i)), 9)
	}
	for _, tc := range []struct {
		name              string
		format, text      string
		maxRunes, overlap int
		want              []string
	}{
		{"English sentences", "markdown", strings.Join(en, " "), 65, 25, []string{
			strings.Join(en[0:3], " "), strings.Join(en[2:6], " "), strings.Join(en[5:9], " "), strings.Join(en[8:10], " "),
		}},
		{"Chinese sentences", "markdown", strings.Join(zh, ""), 40, 15, []string{
			strings.Join(zh[0:3], ""), strings.Join(zh[2:6], ""), strings.Join(zh[5:9], ""), strings.Join(zh[8:12], ""),
		}},
		{"no overlap", "markdown", strings.Join(en, " "), 65, -1, []string{
			strings.Join(en[0:3], " "), strings.Join(en[3:6], " "), strings.Join(en[6:9], " "), en[9],
		}},
		{"Chinese without punctuation: cut at MaxRunes, overlap by runes", "markdown", hanRun, 40, 10, []string{
			string(han[0:40]), string(han[30:80]), string(han[70:100]),
		}},
		{"English without punctuation: cut at spaces, overlap from a word", "markdown", strings.Join(words, " "), 35, 12, []string{
			strings.Join(words[0:3], " "), strings.Join(words[2:6], " "), strings.Join(words[5:9], " "), strings.Join(words[8:10], " "),
		}},
		{"lines of plain text, partial overlap in Chinese", "text", "第一行内容比较长一些\n第二行\n第三行内容也比较长", 12, 4, []string{
			"第一行内容比较长一些", "长一些\n第二行", "第二行\n第三行内容也比较长",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := map[string]string{"markdown": "# 标题\n\n", "text": "标题\n\n"}[tc.format] + tc.text + "\n"
			got, err := SplitDocument(tc.format, []byte(src), ChunkOptions{MaxRunes: tc.maxRunes, OverlapRunes: tc.overlap})
			if err != nil {
				t.Fatal(err)
			}
			var texts []string
			for _, c := range got {
				texts = append(texts, c.Text)
				if !slices.Equal(c.Heading, []string{"标题"}) {
					t.Errorf("chunk %d heading %q", c.Index, c.Heading)
				}
				// The source paragraph is verbatim, so every piece's span is exact.
				if src[c.Start:c.End] != c.Text {
					t.Errorf("chunk %d spans %q, not its text %q", c.Index, src[c.Start:c.End], c.Text)
				}
			}
			if !slices.Equal(texts, tc.want) {
				t.Errorf("pieces\n got %q\nwant %q", texts, tc.want)
			}
			checkInvariants(t, src, got, tc.maxRunes, tc.overlap)
		})
	}
}

func TestSplitErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		format string
		src    []byte
		opts   ChunkOptions
		msg    string
		code   kefu.Code
	}{
		{"invalid UTF-8", "text", []byte("退货\xff政策"), ChunkOptions{}, "byte 6", ""},
		{"truncated rune", "markdown", []byte("ok\n\xe9\x80"), ChunkOptions{}, "byte 3", ""},
		{"too large", "text", bytes.Repeat([]byte("a"), MaxDocumentBytes+1), ChunkOptions{}, "limit", kefu.TooLarge},
		{"unknown format", "pdf", []byte("hello"), ChunkOptions{}, `"pdf"`, ""},
		{"negative MaxRunes", "text", []byte("hello"), ChunkOptions{MaxRunes: -5}, "MaxRunes", ""},
		{"overlap not below MaxRunes", "text", []byte("hello"), ChunkOptions{MaxRunes: 50, OverlapRunes: 50}, "OverlapRunes", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := SplitDocument(tc.format, tc.src, tc.opts)
			want := kefu.Invalid
			if tc.code != "" {
				want = tc.code
			}
			if kefu.CodeOf(err) != want || !strings.Contains(kefu.MessageOf(err), tc.msg) {
				t.Errorf("err = %v, want %s naming %s", err, want, tc.msg)
			}
		})
	}
	// At the limit is fine, and empty documents have no chunks.
	if got, err := SplitDocument("text", bytes.Repeat([]byte("a"), MaxDocumentBytes), ChunkOptions{}); err != nil || len(got) == 0 {
		t.Errorf("5 MiB document: %d chunks, %v", len(got), err)
	}
	for _, f := range []string{"markdown", "html", "text"} {
		if got, err := SplitDocument(f, []byte(" \n\n\t"), ChunkOptions{}); err != nil || len(got) != 0 {
			t.Errorf("%s: blank document gave %v, %v", f, got, err)
		}
	}
	// A byte order mark is no text.
	got, err := SplitDocument("text", []byte("\xef\xbb\xbfHello."), ChunkOptions{})
	if err != nil || len(got) != 1 || got[0].Text != "Hello." || got[0].Start != 3 {
		t.Errorf("with a BOM: %+v, %v", got, err)
	}
}

func TestDetectFormat(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"guide.MD", "anything", "markdown"},
		{"page.htm", "", "html"},
		{"notes.txt", "# looks like markdown", "text"},
		{"upload", "\xef\xbb\xbf  <!DOCTYPE html><html><body>x</body></html>", "html"},
		{"upload", "<html lang=zh><p>x</p></html>", "html"},
		{"upload", "<!-- saved page -->\n<html><p>x</p></html>", "html"},
		{"upload", "## 退货政策\n\n签收后7天内可退货。", "markdown"},
		{"upload", "---\ntitle: Returns\n---\nText", "markdown"},
		{"upload", "See [the policy](https://x.example/p).", "markdown"},
		{"upload", "退货政策\n\n签收后7天内可退货。", "text"},
		{"upload", "<b>not a page</b> and some text", "text"},
		{"", "", "text"},
	} {
		if got := DetectFormat(tc.name, []byte(tc.src)); got != tc.want {
			t.Errorf("DetectFormat(%q, %q) = %q, want %q", tc.name, tc.src, got, tc.want)
		}
	}
}

// The demo documents split cleanly, and every sentence of their body is in some chunk. The
// sentences are found independently of the splitter: for HTML by the x/net/html tree parser.
func TestSplitDemoDocuments(t *testing.T) {
	md, err := os.ReadFile("demo/docs/shipping-guide.zh.md")
	if err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile("demo/docs/warranty.en.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range []ChunkOptions{{}, {MaxRunes: 120, OverlapRunes: 30}, {MaxRunes: 40, OverlapRunes: -1}} {
		maxRunes, overlap, _ := opts.resolve("test")

		chunks, err := SplitDocument(DetectFormat("shipping-guide.zh.md", md), md, opts)
		if err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, string(md), chunks, maxRunes, overlap)
		if opts.MaxRunes == 0 {
			covers(t, chunks, markdownSentences(string(md)))
			if chunks[0].Heading[0] != "配送指南" || len(chunks) < 8 {
				t.Errorf("shipping guide: %d chunks, first under %q", len(chunks), chunks[0].Heading)
			}
		}

		chunks, err = SplitDocument(DetectFormat("warranty.en.html", page), page, opts)
		if err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, string(page), chunks, maxRunes, overlap)
		if opts.MaxRunes == 0 {
			covers(t, chunks, htmlSentences(t, page))
			for _, c := range chunks {
				if strings.Contains(c.Text, "dataLayer") || strings.Contains(c.Text, "All rights reserved") || strings.Contains(c.Text, "Related articles") {
					t.Errorf("page furniture in chunk %d: %q", c.Index, c.Text)
				}
			}
		}
	}
}

var sentenceEnd = regexp.MustCompile(`[。！？]|[.!?](\s|$)`)

// sentences splits text into sentences, keeping their punctuation.
func sentences(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		for {
			loc := sentenceEnd.FindStringIndex(line)
			if loc == nil {
				break
			}
			out = append(out, strings.TrimSpace(line[:loc[1]]))
			line = line[loc[1]:]
		}
		out = append(out, strings.TrimSpace(line))
	}
	return out
}

// markdownSentences strips the Markdown this project's demo guide uses (headings, lists,
// bold, tables) and returns its sentences and table cells.
func markdownSentences(md string) []string {
	var out []string
	for _, line := range strings.Split(md, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") || strings.HasPrefix(line, "| ---") {
			continue
		}
		line = strings.ReplaceAll(line, "**", "")
		line = regexp.MustCompile(`^([-*] |\d+\. )`).ReplaceAllString(line, "")
		if strings.HasPrefix(line, "|") {
			out = append(out, strings.Split(strings.Trim(line, "|"), "|")...)
			continue
		}
		out = append(out, sentences(line)...)
	}
	return out
}

// htmlSentences parses a page with html.Parse and returns the sentences of its main element.
func htmlSentences(t *testing.T, page []byte) []string {
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(n *html.Node, inMain bool)
	walk = func(n *html.Node, inMain bool) {
		if n.Type == html.ElementNode && (n.DataAtom == atom.Script || n.DataAtom == atom.Style) {
			return
		}
		inMain = inMain || n.DataAtom == atom.Main
		if n.Type == html.TextNode && inMain {
			out = append(out, sentences(n.Data)...)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, inMain)
		}
	}
	walk(doc, false)
	if len(out) < 50 {
		t.Fatalf("only %d sentences in the page", len(out))
	}
	return out
}

// stripped is s without white space, invisible runes or colons (heading colons are dropped).
func stripped(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || dropRune(r) || r == ':' || r == '：' {
			return -1
		}
		return r
	}, s)
}

// checkCoverage: without overlap the chunks hold exactly the text of the units, in order; for
// plain text, the headings and units hold every visible rune of the source.
func checkCoverage(t *testing.T, format string, src []byte, chunks []Chunk) {
	t.Helper()
	units, _ := parseUnits(format, src)
	var fromUnits, fromChunks strings.Builder
	for _, u := range units {
		fromUnits.WriteString(u.text)
	}
	for _, c := range chunks {
		fromChunks.WriteString(c.Text)
	}
	if a, b := stripped(fromChunks.String()), stripped(fromUnits.String()); a != b {
		t.Fatalf("chunks hold %q, units %q", a, b)
	}
	if format != "text" {
		return
	}
	b := &builder{src: src}
	b.plain(len(src) - len(bytes.TrimPrefix(src, utf8BOM)))
	var all strings.Builder
	seen := 0
	for _, u := range b.units {
		for ; seen < u.section; seen++ {
			all.WriteString(b.titles[seen])
		}
		all.WriteString(u.text)
	}
	for ; seen < len(b.titles); seen++ {
		all.WriteString(b.titles[seen])
	}
	if a, want := stripped(all.String()), stripped(string(bytes.TrimPrefix(src, utf8BOM))); a != want {
		t.Fatalf("headings and units hold %q, the source %q", a, want)
	}
}

func TestSplitCoverage(t *testing.T) {
	for _, tc := range []struct{ format, src string }{
		{"markdown", returnsMarkdown}, {"markdown", returnsMarkdownZH}, {"html", helpPage},
		{"html", helpPageZH}, {"text", policyText}, {"text", policyTextEN},
	} {
		chunks, err := SplitDocument(tc.format, []byte(tc.src), ChunkOptions{MaxRunes: 25, OverlapRunes: -1})
		if err != nil {
			t.Fatal(err)
		}
		checkCoverage(t, tc.format, []byte(tc.src), chunks)
	}
}

func TestTameMarkdown(t *testing.T) {
	guide, err := os.ReadFile("demo/docs/shipping-guide.zh.md")
	if err != nil {
		t.Fatal(err)
	}
	// Documents within the limits are parsed as they are.
	for _, src := range []string{returnsMarkdown, returnsMarkdownZH, string(guide)} {
		if out, runs := tameMarkdown([]byte(src), mdDefaultLimits); runs != nil || string(out) != src {
			t.Errorf("tameMarkdown changed %.40q", src)
		}
	}
	// Each of these would keep goldmark busy for minutes (measured: 30 s to 60 s at this size,
	// growing with the square); tamed, they take milliseconds, and the text after them keeps
	// its heading and its exact span.
	tail := "\n\n# After\n\nThe end of the document.\n"
	for name, hostile := range map[string]string{
		"nested quotes":            strings.Repeat(">", 200_000) + " x",
		"list markers on one line": strings.Repeat("- ", 100_000) + "x",
		"link destinations":        strings.Repeat("[a](", 60_000),
		"angle destinations":       strings.Repeat("[a](<", 50_000),
		"emphasis delimiters":      strings.Repeat("a~*", 80_000),
		"lines of emphasis":        strings.Repeat("*a_\n", 60_000),
	} {
		src := hostile + tail
		start := time.Now()
		chunks, err := SplitDocument("markdown", []byte(src), ChunkOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s: %v", name, d)
		}
		last := chunks[len(chunks)-1]
		if !slices.Equal(last.Heading, []string{"After"}) || last.Text != "The end of the document." || src[last.Start:last.End] != last.Text {
			t.Errorf("%s: last chunk %q %q spans %q", name, last.Heading, last.Text, src[last.Start:last.End])
		}
		checkInvariants(t, src, chunks, DefaultMaxRunes, DefaultOverlapRunes)
	}
}

// A table longer than a tamed paragraph goes on under its header: no row turns into text
// with pipes.
func TestSplitBigTable(t *testing.T) {
	var src strings.Builder
	src.WriteString("# Fees\n\n> | Region | Fee |\n> | --- | --- |\n")
	for i := range 600 {
		fmt.Fprintf(&src, "> | Region %03d | %d CNY |\n", i, i)
	}
	chunks, err := SplitDocument("markdown", []byte(src.String()), ChunkOptions{MaxRunes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, c := range chunks {
		all.WriteString(c.Text + "\n")
		for _, line := range strings.Split(c.Text, "\n") {
			if strings.HasPrefix(line, "|") || strings.HasPrefix(line, ">") || strings.Contains(line, "---") {
				t.Fatalf("chunk %d has markup: %q", c.Index, line)
			}
		}
	}
	for i := range 600 {
		if row := fmt.Sprintf("Region %03d | %d CNY\n", i, i); !strings.Contains(all.String(), row) {
			t.Errorf("no chunk holds row %q", row)
		}
	}
	if n := strings.Count(all.String(), "Region | Fee\n"); n < 2 {
		t.Errorf("the header is in %d chunks, want it again after the split", n)
	}
}

func FuzzSplitDocument(f *testing.F) {
	for _, s := range []string{returnsMarkdown, returnsMarkdownZH, helpPage, helpPageZH, policyText, policyTextEN,
		"", "\xef\xbb\xbf", "a\xffb", "# \n\n#", "<h1></h1><p>x", "<nav><nav></nav>x", "- a\n  - b\n\n> q\n> # h",
		"第一章 总则\n本规定。\n第二章 附则\n附则。", "1. a\n\n2. b", "。。。。", "a. b. c.", "<pre>\n\n x\n</pre>",
		"```\n\n```", "---\nk: v\n---\n", "<table><td>a<td>b<tr><td>c", "　　全角空格\u3000开头"} {
		for kind := range uint8(3) {
			f.Add(kind, s, uint16(20), uint8(5))
		}
	}
	f.Fuzz(func(t *testing.T, kind uint8, src string, maxRunes uint16, overlap uint8) {
		format := []string{"markdown", "html", "text"}[kind%3]
		opts := ChunkOptions{MaxRunes: int(maxRunes%300) + 1, OverlapRunes: int(overlap) % (int(maxRunes%300) + 1)}
		if opts.OverlapRunes == 0 {
			opts.OverlapRunes = -1
		}
		chunks, err := SplitDocument(format, []byte(src), opts)
		if !utf8.ValidString(src) {
			if kefu.CodeOf(err) != kefu.Invalid {
				t.Fatalf("invalid UTF-8 gave %v", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, src, chunks, opts.MaxRunes, opts.OverlapRunes)
		if t.Failed() {
			t.FailNow()
		}
		noOverlap, err := SplitDocument(format, []byte(src), ChunkOptions{MaxRunes: opts.MaxRunes, OverlapRunes: -1})
		if err != nil {
			t.Fatal(err)
		}
		checkCoverage(t, format, []byte(src), noOverlap)
		if format == "markdown" { // taming with tiny limits keeps the map to the source right
			lim := mdLimits{markers: 2, indent: 4, paragraph: 24, delims: 3, linkScan: 16, linkDest: 8}
			out, runs := tameMarkdown([]byte(src), lim)
			for i, r := range runs {
				if string(out[r.out:r.out+r.n]) != src[r.src:r.src+r.n] || i > 0 && (r.out < runs[i-1].out+runs[i-1].n || r.src < runs[i-1].src+runs[i-1].n) {
					t.Fatalf("run %d %+v does not map %q to %q", i, r, out, src)
				}
			}
			b := &builder{src: []byte(src), mdLimits: &lim}
			b.markdown(0)
			checkInvariants(t, src, pack(b.src, b.units, opts.MaxRunes, max(opts.OverlapRunes, 0)), opts.MaxRunes, opts.OverlapRunes)
		}
		if format == "html" { // span arithmetic relies on the tokens covering the input
			z, n := html.NewTokenizer(strings.NewReader(src)), 0
			for z.Next() != html.ErrorToken {
				n += len(z.Raw())
			}
			if n += len(z.Raw()); n != len(src) || z.Err() != io.EOF {
				t.Fatalf("tokens cover %d of %d bytes (%v)", n, len(src), z.Err())
			}
		}
	})
}
