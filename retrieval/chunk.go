package retrieval

import (
	"bytes"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/kefu-dev/kefu"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	east "github.com/yuin/goldmark/extension/ast"
	gmtext "github.com/yuin/goldmark/text"
	gmutil "github.com/yuin/goldmark/util"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// Documents (help-centre pages, policies, manuals) become searchable passages here. Splitting
// is in two steps. A reader for each format turns the document into units — a paragraph, a
// list, a table (a table row in HTML), a code block — each under the heading path in force
// where it stands. Then consecutive units of one section are packed into chunks of at most
// MaxRunes; a unit longer than that is cut at sentence ends (Chinese 。！？； and English . ! ?
// before a space, and line ends), at a clause or a space when a sentence alone is too long, and
// only as a last resort at exactly MaxRunes, and each piece after the first repeats up to
// OverlapRunes of the previous piece's tail, whole sentences when they fit. Everything counts
// runes, not bytes, so Chinese and English chunks hold about the same amount of meaning.

// MaxDocumentBytes is the largest document SplitDocument accepts.
const MaxDocumentBytes = 5 << 20

// Chunk defaults, in runes.
const (
	DefaultMaxRunes     = 600
	DefaultOverlapRunes = 80
)

// ChunkOptions bound the chunks SplitDocument makes.
type ChunkOptions struct {
	// MaxRunes bounds a chunk's own text; 0 means DefaultMaxRunes.
	MaxRunes int
	// OverlapRunes of a cut unit's previous piece are repeated at the start of the next piece,
	// so a chunk may hold up to MaxRunes+OverlapRunes runes. 0 means DefaultOverlapRunes (at
	// most a quarter of MaxRunes); a negative value means no overlap.
	OverlapRunes int
}

// Chunk is one passage of a document.
type Chunk struct {
	Index   int      // 0, 1, 2… in document order
	Heading []string // the heading path above the text, outermost first: ["Returns", "Refund timing"]
	Text    string   // plain text: no markup, whitespace collapsed (kept inside code and pre)
	// Start and End are the byte offsets in the source that the text came from: exact when the
	// text is a verbatim slice of the source (plain text, mostly), otherwise the span of the
	// source units it was extracted from. Both are 0 when the span is unknown.
	Start, End int
}

// SplitDocument splits a document into chunks by its structure. format is "markdown" (or
// "md"), "html" or "text"; DetectFormat picks one from a file name and the content. Headings
// are not repeated in the text (they are in Heading), and a heading with no text under it
// makes no chunk. A document that is over MaxDocumentBytes, is not UTF-8, or has an unknown
// format is kefu.Invalid.
func SplitDocument(format string, src []byte, opts ChunkOptions) ([]Chunk, error) {
	const op = "retrieval.SplitDocument"
	maxRunes, overlap, err := opts.resolve(op)
	if err != nil {
		return nil, err
	}
	if len(src) > MaxDocumentBytes {
		return nil, kefu.Errorf(op, kefu.TooLarge, "the document is %d bytes; the limit is %d bytes (5 MiB)", len(src), MaxDocumentBytes)
	}
	if off := invalidUTF8(src); off >= 0 {
		return nil, kefu.Errorf(op, kefu.Invalid, "the document is not valid UTF-8 at byte %d", off)
	}
	units, ok := parseUnits(format, src)
	if !ok {
		return nil, kefu.Errorf(op, kefu.Invalid, "unknown document format %q: want markdown, html or text", format)
	}
	return pack(src, units, maxRunes, overlap), nil
}

// parseUnits reads a document in a format into units; false: the format is unknown.
func parseUnits(format string, src []byte) ([]unit, bool) {
	b := &builder{src: src}
	start := 0
	if bytes.HasPrefix(src, utf8BOM) {
		start = len(utf8BOM)
	}
	switch strings.ToLower(strings.TrimSpace(format)) {
	case "markdown", "md":
		b.markdown(start)
	case "html", "htm":
		b.html(src[start:], start)
	case "text", "txt":
		b.plain(start)
	default:
		return nil, false
	}
	return b.units, true
}

var utf8BOM = []byte("\xef\xbb\xbf")

func (o ChunkOptions) resolve(op string) (maxRunes, overlap int, err error) {
	maxRunes = o.MaxRunes
	if maxRunes == 0 {
		maxRunes = DefaultMaxRunes
	}
	if maxRunes < 0 {
		return 0, 0, kefu.Errorf(op, kefu.Invalid, "MaxRunes must be positive, not %d", maxRunes)
	}
	switch {
	case o.OverlapRunes == 0:
		overlap = min(DefaultOverlapRunes, maxRunes/4)
	case o.OverlapRunes < 0:
		overlap = 0
	default:
		overlap = o.OverlapRunes
	}
	if overlap >= maxRunes {
		return 0, 0, kefu.Errorf(op, kefu.Invalid, "OverlapRunes (%d) must be less than MaxRunes (%d)", overlap, maxRunes)
	}
	return maxRunes, overlap, nil
}

// invalidUTF8 returns the offset of the first byte that is not UTF-8, or -1.
func invalidUTF8(src []byte) int {
	if utf8.Valid(src) {
		return -1
	}
	for i := 0; i < len(src); {
		r, n := utf8.DecodeRune(src[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// DetectFormat names the format of a document — "markdown", "html" or "text" — from its file
// name's extension, or else from its first bytes.
func DetectFormat(filename string, src []byte) string {
	switch strings.ToLower(filepath.Ext(filename)) {
	case ".md", ".markdown", ".mdown", ".mkd", ".mkdn":
		return "markdown"
	case ".html", ".htm", ".xhtml", ".shtml":
		return "html"
	case ".txt", ".text":
		return "text"
	}
	head := bytes.TrimPrefix(src, utf8BOM)
	if len(head) > 8192 {
		head = head[:8192]
	}
	head = bytes.TrimLeftFunc(head, unicode.IsSpace)
	if htmlStart.Match(head) {
		return "html"
	}
	if frontMatterLen(head) > 0 || markdownHint.Match(head) {
		return "markdown"
	}
	return "text"
}

var (
	// htmlStart matches a document that opens with a doctype or a common page-level tag.
	htmlStart = regexp.MustCompile(`(?i)^(<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]|<\?xml[^>]*>\s*<(!doctype\s+html|html)|<!--[\s\S]*?-->\s*<(!doctype\s+html|html[\s>]))`)
	// markdownHint matches an ATX heading, a fence, a link, or a table's delimiter row.
	markdownHint = regexp.MustCompile("(?m)^#{1,6}[ \t]+\\S|^(```|~~~)|\\[[^\\]\\n]+\\]\\([^)\\s]+\\)|^\\|?[ \t]*:?-{3,}:?[ \t]*\\|")
)

// unit is one structural piece of a document: a paragraph, a list, a table or a row, a code
// block. Its text is never empty.
type unit struct {
	section    int      // how many headings came before it: units of one section share it
	heading    []string // the heading path; shared, never modified
	text       string
	start, end int // its span in the source; end == 0: unknown
}

// builder collects the units of a document and keeps its heading path.
type builder struct {
	src    []byte
	open   []openHeading // the headings in force, outermost first
	path   []string      // their texts without empties: a fresh slice after every heading
	titles []string      // every heading's text, in order
	units  []unit
	flat   bool // headings become units (text extracted for inside a Markdown list)

	mdLimits *mdLimits // tests only: nil means mdDefaultLimits
}

type openHeading struct {
	level int
	text  string
}

// heading starts a section: it closes the open headings of its level and deeper.
func (b *builder) heading(level int, text string) {
	text = strings.TrimSpace(text)
	if b.flat {
		b.add(text, 0, 0)
		return
	}
	for len(b.open) > 0 && b.open[len(b.open)-1].level >= level {
		b.open = b.open[:len(b.open)-1]
	}
	b.open = append(b.open, openHeading{level, text})
	b.path = nil
	for _, h := range b.open {
		if h.text != "" {
			b.path = append(b.path, h.text)
		}
	}
	b.titles = append(b.titles, text)
}

// add appends a unit unless its text is blank.
func (b *builder) add(text string, start, end int) {
	text = trimBlank(text)
	if text == "" {
		return
	}
	if start < 0 || end > len(b.src) || end <= start {
		start, end = 0, 0
	}
	b.units = append(b.units, unit{section: len(b.titles), heading: b.path, text: text, start: start, end: end})
}

// trimBlank drops leading blank lines and trailing white space, keeping the indentation of
// the first line (it matters in code).
func trimBlank(s string) string {
	s = strings.TrimRightFunc(s, unicode.IsSpace)
	for s != "" {
		i := strings.IndexByte(s, '\n')
		if i < 0 || strings.TrimSpace(s[:i]) != "" {
			break
		}
		s = s[i+1:]
	}
	if strings.TrimSpace(s) == "" {
		return ""
	}
	return s
}

// textBuf gathers running text: runs of white space become one space, and a space between two
// CJK characters (from a line break in the source) disappears.
type textBuf struct {
	b          strings.Builder
	space      bool // white space seen since the last rune written
	last       rune
	has        bool // start and end are set
	start, end int
}

func (t *textBuf) write(s string, keepSpace bool) {
	for _, r := range s {
		switch {
		case keepSpace && (r == '\n' || r == '\t' || r == ' '):
			t.b.WriteRune(r)
			t.last, t.space = r, false
		case unicode.IsSpace(r):
			if keepSpace {
				if r != '\r' {
					t.b.WriteByte(' ')
					t.last = ' '
				}
				continue
			}
			t.space = true
		case dropRune(r):
		default:
			if t.space && t.b.Len() > 0 && t.last != '\n' && !(wide(t.last) && wide(r)) {
				t.b.WriteByte(' ')
			}
			t.space = false
			t.b.WriteRune(r)
			t.last = r
		}
	}
}

// newline ends the current line (a <br> or a hard line break).
func (t *textBuf) newline() {
	if t.b.Len() > 0 && t.last != '\n' {
		t.b.WriteByte('\n')
		t.last = '\n'
	}
	t.space = false
}

// sep writes a literal separator between two pieces of text; nothing before the first.
func (t *textBuf) sep(s string) {
	if t.b.Len() > 0 && t.last != '\n' {
		t.b.WriteString(s)
		t.last = ' '
	}
	t.space = false
}

// span widens the source span of the text gathered.
func (t *textBuf) span(start, end int) {
	if end <= start {
		return
	}
	if !t.has {
		t.start, t.has = start, true
	}
	t.end = max(t.end, end)
}

// take returns the text and its span and empties the buffer.
func (t *textBuf) take() (string, int, int) {
	s, start, end := t.b.String(), t.start, t.end
	if !t.has {
		start, end = 0, 0
	}
	*t = textBuf{}
	return s, start, end
}

// wide reports whether r is a CJK character or CJK punctuation: no space goes between two.
func wide(r rune) bool {
	return r >= 0x2E80 && r <= 0x312F || r >= 0x3190 && r <= 0x9FFF || r >= 0xF900 && r <= 0xFAFF ||
		r >= 0xFE30 && r <= 0xFE4F || r >= 0xFF00 && r <= 0xFF60 || r >= 0xFFE0 && r <= 0xFFE6 ||
		r >= 0x20000 && r <= 0x3FFFF
}

// dropRune reports the invisible runes that never belong in a passage: control characters
// other than white space, zero-width spaces and byte order marks.
func dropRune(r rune) bool {
	return unicode.IsControl(r) && !unicode.IsSpace(r) || r == 0x200B || r == 0x2060 || r == 0xFEFF
}

// cleanText drops the runes dropRune names and carriage returns; it returns s itself when
// there are none, so a verbatim slice stays verbatim.
func cleanText(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r == '\r' || dropRune(r) }) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r == '\r' || dropRune(r) {
			return -1
		}
		return r
	}, s)
}

// ---- Markdown ----

// markdown reads CommonMark with GitHub's tables, strikethrough and task lists. Front matter,
// HTML comments, images and link targets are dropped; link text and bare URLs are kept.
func (b *builder) markdown(off int) {
	off += frontMatterLen(b.src[off:])
	lim := mdDefaultLimits
	if b.mdLimits != nil {
		lim = *b.mdLimits
	}
	src, runs := tameMarkdown(b.src[off:], lim)
	md := goldmark.New(goldmark.WithExtensions(extension.Table, extension.Strikethrough, extension.TaskList))
	doc := md.Parser().Parse(gmtext.NewReader(src))
	w := &mdWalker{b: b, src: src, off: off, runs: runs}
	w.blocks(doc)
}

// goldmark's parser takes time quadratic in a few things that no real document has much of:
// container markers opening one line (> > > …), leading indentation, unmatched code spans,
// emphasis delimiters and link destinations within one paragraph. tameMarkdown bounds them, so
// a hostile 5 MiB document parses in seconds, not hours; a document within these limits is
// returned as it is.
type mdLimits struct {
	markers   int // container markers at the start of a line
	indent    int // bytes of leading white space
	paragraph int // bytes of a run of non-blank lines, or of one line
	delims    int // emphasis delimiters (* _ ~) in a paragraph (or a table row)
	linkScan  int // bytes goldmark may scan for link destinations in a paragraph
	linkDest  int // bytes one link destination may run on without a space
}

var mdDefaultLimits = mdLimits{markers: 16, indent: 64, paragraph: 8 << 10, delims: 200, linkScan: 64 << 10, linkDest: 2048}

// run is a stretch of the tamed Markdown copied from the source: out[o:o+n] = src[s:s+n].
type run struct{ out, src, n int }

// tamer rewrites Markdown for tameMarkdown, remembering where each byte came from.
type tamer struct {
	lim      mdLimits
	src, out []byte
	runs     []run
	changed  bool
	// per paragraph
	para, delims, linkScan int
	header, delimRow       []byte // of the table being read: repeated when it is split
}

func (t *tamer) copy(from, to int) {
	if to <= from {
		return
	}
	if n := len(t.runs); n > 0 && t.runs[n-1].src+t.runs[n-1].n == from && t.runs[n-1].out+t.runs[n-1].n == len(t.out) {
		t.runs[n-1].n += to - from
	} else {
		t.runs = append(t.runs, run{out: len(t.out), src: from, n: to - from})
	}
	t.out = append(t.out, t.src[from:to]...)
}

func (t *tamer) insert(s string) {
	t.out = append(t.out, s...)
	t.changed = true
}

// breakParagraph ends the paragraph with a blank line (inside its block quotes) before the
// current line, or in the middle of it; a table goes on under its header again.
func (t *tamer) breakParagraph(prefix []byte, midLine bool) {
	cont := bytes.Map(func(r rune) rune { // the same containers, continued: list markers become spaces
		if r == '>' || r == ' ' || r == '\t' {
			return r
		}
		return ' '
	}, prefix)
	quotes := cont[:bytes.LastIndexByte(cont, '>')+1]
	if midLine {
		t.insert("\n")
	}
	t.insert(string(quotes) + "\n")
	if t.header != nil {
		t.insert(string(cont) + string(t.header) + "\n" + string(cont) + string(t.delimRow) + "\n")
	}
	if midLine {
		t.insert(string(cont))
	}
	t.para, t.delims, t.linkScan = 0, 0, 0
}

// tameMarkdown returns src, or a rewrite of it within the limits above and the runs that map
// the rewrite back to src.
func tameMarkdown(src []byte, lim mdLimits) ([]byte, []run) {
	t := &tamer{lim: lim, src: src, out: make([]byte, 0, len(src))}
	var (
		fenceChar byte
		fenceLen  int
		prev      []byte // the previous line's content, a table's header if a delimiter row follows
	)
	for ls := 0; ls < len(src); {
		le, next := len(src), len(src)
		if j := bytes.IndexByte(src[ls:], '\n'); j >= 0 {
			le, next = ls+j, ls+j+1
		}
		line := src[ls:le]
		switch {
		case fenceLen > 0: // code: goldmark does not parse inside
			if c, n := fence(line); c == fenceChar && n >= fenceLen && len(bytes.TrimSpace(line[leadingSpaces(line)+n:])) == 0 {
				fenceLen = 0
			}
			t.copy(ls, next)
		case len(bytes.TrimSpace(line)) == 0:
			t.para, t.delims, t.linkScan, t.header, prev = 0, 0, 0, nil, nil
			t.copy(ls, next)
		default:
			end, keep := containerPrefix(line, t.lim)
			content := line[end:]
			if end == leadingSpaces(line) && end <= 3 {
				if c, n := fence(line); n > 0 && (c == '~' || !bytes.ContainsRune(line[end+n:], '`')) {
					fenceChar, fenceLen = c, n
					t.para, t.delims, t.linkScan, t.header, prev = 0, 0, 0, nil, nil
					t.copy(ls, next)
					break
				}
			}
			if t.para > 0 && prev != nil && bytes.IndexByte(content, '|') >= 0 && tableDelimiterRow.Match(content) {
				t.header, t.delimRow = prev, content // a table: its header stays with it
			} else if t.para > 0 && t.para+len(line) > t.lim.paragraph {
				t.breakParagraph(line[:keep], false)
			}
			t.para += len(line) + 1
			if t.header != nil {
				t.delims = 0 // a table's cells are parsed one by one
			}
			t.copy(ls, ls+keep)
			if keep < end {
				t.changed = true // markers or indentation dropped
			}
			t.content(ls+end, le, line[:keep])
			t.copy(le, next)
			prev = content
		}
		ls = next
	}
	if !t.changed {
		return src, nil
	}
	return t.out, t.runs
}

var tableDelimiterRow = regexp.MustCompile(`^\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$`)

// content copies the inline part of a line, escaping emphasis delimiters past the limit and
// link destinations past the scan budget, and breaking a line longer than a paragraph may be.
func (t *tamer) content(from, to int, prefix []byte) {
	src := t.src
	done, lineBytes := from, 0
	escaped := false
	ws, gt := from, from // the next white space and '>' at or after a position (monotone)
	for i := from; i < to; i++ {
		c := src[i]
		if lineBytes >= t.lim.paragraph*7/8 && c == ' ' || lineBytes >= t.lim.paragraph && utf8.RuneStart(c) {
			t.copy(done, i)
			done = i
			t.breakParagraph(prefix, true)
			t.para, lineBytes = to-i, 0
		}
		lineBytes++
		if escaped {
			escaped = false
			continue
		}
		switch c {
		case '\\':
			escaped = true
		case '*', '_', '~':
			if t.delims++; t.delims > t.lim.delims {
				t.copy(done, i)
				done = i
				t.insert("\\")
			}
		case ']':
			if i+1 >= to || src[i+1] != '(' {
				continue
			}
			var d int
			if i+2 < to && src[i+2] == '<' {
				for gt = max(gt, i+3); gt < to && src[gt] != '>'; gt++ {
				}
				d = gt - i
			} else {
				for ws = max(ws, i+2); ws < to && !isSpaceByte(src[ws]); ws++ {
				}
				d = ws - i
			}
			if t.linkScan += d; d > t.lim.linkDest || t.linkScan > t.lim.linkScan {
				t.copy(done, i+1)
				done = i + 1
				t.insert("\\") // ]\( is no link
			}
		}
	}
	t.copy(done, to)
}

// containerPrefix returns the end of a line's block-quote and list markers and their white
// space, and how much of that to keep: all of it unless it has more markers or white space
// than the limits allow.
func containerPrefix(line []byte, lim mdLimits) (end, keep int) {
	markers, spaces := 0, 0
	keep = -1
	i := 0
	for i < len(line) {
		switch c := line[i]; {
		case c == ' ' || c == '\t':
			spaces++
			i++
			if spaces > lim.indent && keep < 0 {
				keep = i - 1
			}
			continue
		case c == '>':
			i++
		case (c == '-' || c == '*' || c == '+') && i+1 < len(line) && (line[i+1] == ' ' || line[i+1] == '\t'):
			i++
		case c >= '0' && c <= '9':
			j := i
			for j < len(line) && j-i < 9 && line[j] >= '0' && line[j] <= '9' {
				j++
			}
			if j+1 < len(line) && (line[j] == '.' || line[j] == ')') && (line[j+1] == ' ' || line[j+1] == '\t') {
				i = j + 1
			} else {
				return i, keepOr(keep, i)
			}
		default:
			return i, keepOr(keep, i)
		}
		if markers++; markers > lim.markers && keep < 0 {
			keep = i - 1
			for keep > 0 && line[keep] != ' ' && line[keep] != '\t' && line[keep] != '>' {
				keep--
			}
		}
	}
	return i, keepOr(keep, i)
}

func keepOr(keep, end int) int {
	if keep < 0 {
		return end
	}
	return keep
}

func leadingSpaces(line []byte) int {
	i := 0
	for i < len(line) && line[i] == ' ' {
		i++
	}
	return i
}

// fence returns the character and length of a code fence opening line (after up to three
// spaces), or 0.
func fence(line []byte) (byte, int) {
	i := leadingSpaces(line)
	if i > 3 || i >= len(line) || line[i] != '`' && line[i] != '~' {
		return 0, 0
	}
	c, n := line[i], 0
	for i+n < len(line) && line[i+n] == c {
		n++
	}
	if n < 3 {
		return 0, 0
	}
	return c, n
}

// frontMatterLen returns the length of the YAML (---) or TOML (+++) front matter that opens
// src, or 0. The block must close and its first line must look like a key, so a document that
// opens with a thematic break keeps its text.
func frontMatterLen(src []byte) int {
	for _, fence := range []string{"---", "+++"} {
		if !bytes.HasPrefix(src, []byte(fence)) {
			continue
		}
		lineEnd := bytes.IndexByte(src, '\n')
		if lineEnd < 0 || strings.TrimSpace(string(src[:lineEnd])) != fence {
			return 0
		}
		first := true
		for i := lineEnd + 1; i < len(src); {
			j := bytes.IndexByte(src[i:], '\n')
			next := len(src)
			if j >= 0 {
				next = i + j + 1
			}
			line := strings.TrimSpace(string(src[i:next]))
			switch {
			case line == fence || fence == "---" && line == "...":
				if first {
					return 0
				}
				return next
			case first && line != "":
				if !frontMatterKey.MatchString(line) {
					return 0
				}
				first = false
			}
			i = next
		}
		return 0
	}
	return 0
}

var frontMatterKey = regexp.MustCompile(`^(#|[\w"'.-]+\s*[:=]|\[)`)

type mdWalker struct {
	b    *builder
	src  []byte // the Markdown after any front matter, tamed
	off  int    // where the Markdown starts in the document
	runs []run  // where the tamed Markdown came from, or nil: it is the source
}

// pos maps an offset in w.src to one in the document; end: o ends a span (it maps the byte
// before o).
func (w *mdWalker) pos(o int, end bool) int {
	if w.runs == nil {
		return o + w.off
	}
	if end && o > 0 {
		o--
	}
	r := w.runs[max(0, sort.Search(len(w.runs), func(i int) bool { return w.runs[i].out > o })-1)]
	switch {
	case o < r.out:
		return r.src + w.off
	case o >= r.out+r.n: // an inserted byte: the end of the run before it
		return r.src + r.n + w.off
	case end:
		return r.src + o - r.out + 1 + w.off
	}
	return r.src + o - r.out + w.off
}

// blocks turns the block children of n into headings and units.
func (w *mdWalker) blocks(n ast.Node) {
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		switch c := c.(type) {
		case *ast.Heading:
			w.b.heading(c.Level, w.inline(c))
		case *ast.Blockquote:
			w.blocks(c)
		case *ast.HTMLBlock:
			raw, base := w.htmlBlock(c)
			w.b.html(raw, base)
		case *ast.ThematicBreak:
		default:
			start, end := w.span(c)
			w.b.add(w.blockText(c), start, end)
		}
	}
}

// blockText is the text of any block: a paragraph's inline text, a list's items one a line
// (ordered ones numbered), a table's rows one a line with cells joined by " | ", code as is.
func (w *mdWalker) blockText(n ast.Node) string {
	switch n := n.(type) {
	case *ast.Paragraph, *ast.TextBlock, *ast.Heading:
		return w.inline(n)
	case *ast.FencedCodeBlock, *ast.CodeBlock:
		var sb strings.Builder
		lines := n.Lines()
		for i := 0; i < lines.Len(); i++ {
			seg := lines.At(i)
			sb.Write(seg.Value(w.src))
		}
		return cleanText(sb.String())
	case *ast.List:
		return w.list(n)
	case *east.Table:
		return w.table(n)
	case *ast.HTMLBlock:
		raw, _ := w.htmlBlock(n)
		return htmlText(raw)
	case *ast.ThematicBreak:
		return ""
	}
	if c := n.FirstChild(); c != nil && c.Type() == ast.TypeInline {
		return w.inline(n) // a table cell, or a block an extension adds
	}
	var parts []string
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		if t := trimBlank(w.blockText(c)); t != "" {
			parts = append(parts, t)
		}
	}
	return strings.Join(parts, "\n")
}

func (w *mdWalker) list(l *ast.List) string {
	var lines []string
	num := l.Start
	for item := l.FirstChild(); item != nil; item = item.NextSibling() {
		text := trimBlank(w.blockText(item))
		if l.IsOrdered() {
			if text != "" {
				text = strconv.Itoa(num) + ". " + text
			}
			num++
		}
		if text != "" {
			lines = append(lines, text)
		}
	}
	return strings.Join(lines, "\n")
}

func (w *mdWalker) table(t *east.Table) string {
	var rows []string
	for row := t.FirstChild(); row != nil; row = row.NextSibling() {
		var cells []string
		empty := true
		for cell := row.FirstChild(); cell != nil; cell = cell.NextSibling() {
			c := strings.TrimSpace(w.inline(cell))
			cells = append(cells, c)
			empty = empty && c == ""
		}
		if !empty {
			rows = append(rows, strings.Join(cells, " | "))
		}
	}
	return strings.Join(rows, "\n")
}

// inline is the plain text of n's inline content.
func (w *mdWalker) inline(n ast.Node) string {
	var t textBuf
	w.inlineInto(&t, n)
	s, _, _ := t.take()
	return s
}

func (w *mdWalker) inlineInto(t *textBuf, n ast.Node) {
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		switch c := c.(type) {
		case *ast.Text:
			v := c.Segment.Value(w.src)
			if !c.IsRaw() {
				v = gmutil.UnescapePunctuations(gmutil.ResolveEntityNames(gmutil.ResolveNumericReferences(v)))
			}
			t.write(string(v), false)
			switch {
			case c.HardLineBreak():
				t.newline()
			case c.SoftLineBreak():
				t.write("\n", false)
			}
		case *ast.String:
			t.write(string(c.Value), false)
		case *ast.AutoLink:
			t.write(string(c.Label(w.src)), false)
		case *ast.RawHTML:
			var raw []byte
			for i := 0; i < c.Segments.Len(); i++ {
				seg := c.Segments.At(i)
				raw = append(raw, seg.Value(w.src)...)
			}
			if brTag.Match(raw) {
				t.newline()
			}
		case *ast.Image, *east.TaskCheckBox:
		default: // emphasis, code spans, links (their text), strikethrough
			w.inlineInto(t, c)
		}
	}
}

var brTag = regexp.MustCompile(`(?i)^<br[\s/>]`)

// span is the source span of a block: from its first line to its last, white space trimmed.
func (w *mdWalker) span(n ast.Node) (int, int) {
	start, end := -1, -1
	widen := func(s, e int) {
		if e <= s {
			return
		}
		if start < 0 || s < start {
			start = s
		}
		end = max(end, e)
	}
	_ = ast.Walk(n, func(c ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		if c.Type() == ast.TypeBlock {
			lines := c.Lines()
			for i := 0; i < lines.Len(); i++ {
				widen(lines.At(i).Start, lines.At(i).Stop)
			}
		} else if t, ok := c.(*ast.Text); ok {
			widen(t.Segment.Start, t.Segment.Stop)
		}
		return ast.WalkContinue, nil
	})
	if start < 0 {
		return 0, 0
	}
	for end > start && isSpaceByte(w.src[end-1]) {
		end--
	}
	for start < end && isSpaceByte(w.src[start]) {
		start++
	}
	return w.pos(start, false), w.pos(end, true)
}

func isSpaceByte(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// htmlBlock returns the raw HTML of a block and its offset in the document, or -1 when its
// lines are not one run of the source (inside a block quote).
func (w *mdWalker) htmlBlock(n *ast.HTMLBlock) ([]byte, int) {
	segs := n.Lines().Sliced(0, n.Lines().Len())
	if n.HasClosure() {
		segs = append(segs, n.ClosureLine)
	}
	var raw []byte
	base, next := -1, -1
	for i, s := range segs {
		if i == 0 {
			base = s.Start
		} else if s.Start != next {
			base = -2
		}
		next = s.Stop
		raw = append(raw, s.Value(w.src)...)
	}
	if base < 0 {
		return raw, -1
	}
	start, end := w.pos(base, false), w.pos(next, true)
	if end-start != len(raw) || !bytes.Equal(w.b.src[start:end], raw) {
		return raw, -1
	}
	return raw, start
}

// ---- HTML ----

// html reads HTML (a page, or a block of it inside Markdown) that starts at base in the
// document (-1: unknown). Scripts, styles, navigation, page headers and footers, asides and
// hidden elements are skipped; h1–h6 set the heading path; paragraphs, list items, table rows,
// pre, block quotes and the text of divs become units.
func (b *builder) html(raw []byte, base int) {
	z := html.NewTokenizer(bytes.NewReader(raw))
	var (
		buf       textBuf
		pos       int       // offset of the current token in raw
		skip      int       // depth inside a skipped element
		skipTag   atom.Atom // its tag (or its name, for unknown tags)
		skipName  string
		pre       int  // depth inside <pre>
		inRow     bool // inside a table row: cells are joined, not split
		cells     int
		headLevel int   // inside <hN>
		sections  int   // depth inside article, main or section: their header and footer are content
		lists     []int // open lists, innermost last: the next item's number, or 0 in <ul>
		number    string
	)
	flush := func() {
		text, s, e := buf.take()
		if base < 0 {
			s, e = 0, 0
		}
		if headLevel > 0 {
			b.heading(headLevel, text)
			headLevel = 0
			return
		}
		if number != "" && strings.TrimSpace(text) != "" {
			text, number = number+text, ""
		}
		b.add(text, s, e)
	}
	for {
		tt := z.Next()
		tokRaw := z.Raw()
		tokStart := pos
		pos += len(tokRaw)
		switch tt {
		case html.ErrorToken: // io.EOF, or input the tokenizer gives up on
			flush()
			return
		case html.TextToken:
			if skip > 0 {
				continue
			}
			content := bytes.TrimFunc(tokRaw, unicode.IsSpace)
			if len(content) > 0 && base >= 0 {
				lead := len(tokRaw) - len(bytes.TrimLeftFunc(tokRaw, unicode.IsSpace))
				buf.span(base+tokStart+lead, base+tokStart+lead+len(content))
			}
			buf.write(string(z.Text()), pre > 0)
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			name, hasAttr := z.TagName()
			a := atom.Lookup(name)
			if skip > 0 {
				if a == skipTag && (a != 0 || string(name) == skipName) {
					switch {
					case tt == html.StartTagToken:
						skip++
					case tt == html.EndTagToken:
						skip--
					}
				}
				continue
			}
			if tt == html.StartTagToken && skipElement(z, a, hasAttr, sections) {
				skip, skipTag, skipName = 1, a, string(name)
				continue
			}
			start := tt != html.EndTagToken
			switch a {
			case atom.Article, atom.Main, atom.Section:
				if start {
					sections++
				} else if sections > 0 {
					sections--
				}
			}
			switch a {
			case atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6:
				if start {
					inRow = false
					flush()
					headLevel = int(name[1] - '0')
				} else if headLevel > 0 {
					flush()
				}
			case atom.Br:
				if headLevel > 0 || inRow {
					buf.write(" ", false)
				} else {
					buf.newline()
				}
			case atom.Tr:
				flush()
				inRow, cells = start, 0
			case atom.Td, atom.Th:
				if inRow && start {
					if cells > 0 {
						buf.sep(" | ")
					}
					cells++
				} else {
					buf.write(" ", false)
				}
			case atom.Table, atom.Thead, atom.Tbody, atom.Tfoot, atom.Caption:
				flush()
				inRow = false
			case atom.Ol, atom.Ul, atom.Menu, atom.Dir:
				flush()
				number = ""
				switch {
				case start && a == atom.Ol:
					lists = append(lists, 1)
				case start:
					lists = append(lists, 0)
				case len(lists) > 0:
					lists = lists[:len(lists)-1]
				}
			case atom.Li:
				if headLevel > 0 || inRow {
					buf.write(" ", false)
					continue
				}
				flush()
				number = ""
				if n := len(lists); start && n > 0 && lists[n-1] > 0 {
					number = strconv.Itoa(lists[n-1]) + ". "
					lists[n-1]++
				}
			case atom.Pre, atom.Listing, atom.Xmp:
				if headLevel > 0 || inRow {
					buf.write(" ", false)
					continue
				}
				flush()
				if start {
					pre++
				} else if pre > 0 {
					pre--
				}
			default:
				if !blockElement[a] {
					continue // inline: its text runs on
				}
				switch {
				case headLevel > 0 || inRow:
					buf.write(" ", false)
				case pre > 0:
					buf.newline()
				default:
					flush()
				}
			}
		}
	}
}

// blockElement names the elements whose start and end split text into units.
var blockElement = map[atom.Atom]bool{
	atom.Address: true, atom.Article: true, atom.Aside: true, atom.Blockquote: true, atom.Body: true,
	atom.Center: true, atom.Dd: true, atom.Details: true, atom.Dialog: true, atom.Dir: true,
	atom.Div: true, atom.Dl: true, atom.Dt: true, atom.Fieldset: true, atom.Figcaption: true,
	atom.Figure: true, atom.Footer: true, atom.Form: true, atom.Header: true, atom.Hgroup: true,
	atom.Hr: true, atom.Html: true, atom.Legend: true, atom.Li: true, atom.Main: true,
	atom.Menu: true, atom.Nav: true, atom.Ol: true, atom.P: true, atom.Section: true,
	atom.Summary: true, atom.Ul: true, atom.Frameset: true,
}

// skipElement reports whether an element holds no content for the knowledge base: code,
// styles, page furniture (navigation; the page's header and footer, but not an article's),
// asides, and anything hidden.
func skipElement(z *html.Tokenizer, a atom.Atom, hasAttr bool, sections int) bool {
	switch a {
	case atom.Script, atom.Style, atom.Nav, atom.Aside, atom.Noscript, atom.Template, atom.Head,
		atom.Title, atom.Svg, atom.Math, atom.Iframe, atom.Object, atom.Select, atom.Button,
		atom.Textarea, atom.Noembed, atom.Noframes, atom.Canvas, atom.Audio, atom.Video:
		return true
	case atom.Header, atom.Footer:
		if sections == 0 {
			return true
		}
	}
	for hasAttr {
		var k, v []byte
		k, v, hasAttr = z.TagAttr()
		switch string(k) {
		case "hidden":
			return true
		case "aria-hidden":
			if strings.EqualFold(string(v), "true") {
				return true
			}
		case "role":
			switch strings.ToLower(string(v)) {
			case "navigation", "banner", "contentinfo", "complementary", "search":
				return true
			}
		}
	}
	return false
}

// htmlText is the text of a piece of HTML, its units one a line.
func htmlText(raw []byte) string {
	b := &builder{src: raw, flat: true}
	b.html(raw, -1)
	texts := make([]string, len(b.units))
	for i, u := range b.units {
		texts[i] = u.text
	}
	return strings.Join(texts, "\n")
}

// ---- Plain text ----

// plain reads plain text: paragraphs are separated by blank lines, and a line that plainly
// looks like a heading starts a section (see plainHeadings).
func (b *builder) plain(off int) {
	type line struct{ start, end int }
	var paras [][]line
	var cur []line
	for i := off; i < len(b.src); {
		end, next := len(b.src), len(b.src)
		if j := bytes.IndexByte(b.src[i:], '\n'); j >= 0 {
			end, next = i+j, i+j+1
		}
		if strings.TrimFunc(string(b.src[i:end]), func(r rune) bool { return unicode.IsSpace(r) || dropRune(r) }) == "" {
			if cur != nil {
				paras = append(paras, cur)
				cur = nil
			}
		} else {
			cur = append(cur, line{i, end})
		}
		i = next
	}
	if cur != nil {
		paras = append(paras, cur)
	}

	// Classify every line first: heading levels come from the order in which heading styles
	// first appear (as reStructuredText does), and a heading candidate without a body is text.
	lineText := func(l line) string { return strings.TrimSpace(cleanText(string(b.src[l.start:l.end]))) }
	styles := make([][]string, len(paras)) // per paragraph, per line: heading style or ""
	levels := map[string]int{}
	for i, p := range paras {
		styles[i] = make([]string, len(p))
		if len(p) == 1 {
			styles[i][0] = singleLineHeading(lineText(p[0]))
		} else {
			texts := make([]string, len(p))
			for k := range p {
				texts[k] = lineText(p[k])
			}
			copy(styles[i], inParagraphHeadings(texts))
		}
		for _, s := range styles[i] {
			if _, ok := levels[s]; s != "" && !ok {
				levels[s] = len(levels) + 1
			}
		}
	}
	// A one-line candidate is text when it has no body (the next paragraph is a heading as deep
	// or shallower, or there is none) or when it is one of a run in its style: a list.
	single := func(i int) string {
		if i < 0 || i >= len(paras) || len(paras[i]) != 1 {
			return ""
		}
		return styles[i][0]
	}
	demote := make([]bool, len(paras))
	for i := range paras {
		s := single(i)
		if s == "" {
			continue
		}
		next := ""
		if i+1 < len(paras) {
			next = styles[i+1][0]
		}
		demote[i] = i == len(paras)-1 || next != "" && levels[next] <= levels[s] || single(i-1) == s
	}
	for i := range paras {
		if demote[i] {
			styles[i][0] = ""
		}
	}

	for i, p := range paras {
		first := 0 // the first line of the current run of body lines
		emit := func(upto int) {
			if upto <= first {
				return
			}
			start, end := p[first].start, p[upto-1].end
			raw := string(b.src[start:end])
			lead := len(raw) - len(strings.TrimLeftFunc(raw, unicode.IsSpace))
			raw = strings.TrimSpace(raw)
			b.add(cleanText(raw), start+lead, start+lead+len(raw))
		}
		for k, l := range p {
			if styles[i][k] == "" {
				continue
			}
			emit(k)
			b.heading(levels[styles[i][k]], strings.TrimRight(lineText(l), ":："))
			first = k + 1
		}
		emit(len(p))
	}
}

var (
	reChapter   = regexp.MustCompile(`^第[0-9０-９一二三四五六七八九十百千零〇两]+([章节部篇编卷条]|部分)`)
	reCNNum     = regexp.MustCompile(`^[一二三四五六七八九十百]+[、．]`)
	reCNParen   = regexp.MustCompile(`^[（(][一二三四五六七八九十百]+[）)]`)
	reNumbered  = regexp.MustCompile(`^\d{1,2}(?:((?:\.\d{1,2}){1,3})\.?\s+|[.、．)）]\s*)\S`)
	reEnChapter = regexp.MustCompile(`(?i)^(chapter|section|part|article)\s+([0-9]+|[ivxlc]+)\b`)
)

// headingShape reports whether a line could be a heading at all: short, with a letter, and not
// ending like a sentence or a clause.
func headingShape(s string) bool {
	n := utf8.RuneCountInString(s)
	if n == 0 || n > 50 || len(strings.Fields(s)) > 12 || !strings.ContainsFunc(s, unicode.IsLetter) {
		return false
	}
	last, _ := utf8.DecodeLastRuneInString(s)
	return !strings.ContainsRune("。！？；，、.!?;,…", last)
}

// outlineStyle names the numbering or form that marks s as a heading, or "".
func outlineStyle(s string) string {
	if m := reChapter.FindStringSubmatch(s); m != nil {
		return "第" + m[1]
	}
	switch {
	case reCNNum.MatchString(s):
		return "一、"
	case reCNParen.MatchString(s):
		return "（一）"
	}
	if m := reEnChapter.FindStringSubmatch(s); m != nil {
		return strings.ToLower(m[1])
	}
	if m := reNumbered.FindStringSubmatch(s); m != nil {
		return "1" + strings.Repeat(".1", strings.Count(m[1], "."))
	}
	if allCaps(s) {
		return "CAPS"
	}
	return ""
}

// allCaps: at least two cased letters, none in lower case, no CJK.
func allCaps(s string) bool {
	upper := 0
	for _, r := range s {
		switch {
		case unicode.IsLower(r) || wide(r):
			return false
		case unicode.IsUpper(r):
			upper++
		}
	}
	return upper >= 2
}

// singleLineHeading is the heading style of a paragraph of one line, or "": numbered
// ("1.", "1.2", "一、", "（一）", "第一章", "Chapter 2"), ALL CAPS, ending with a colon, or
// else merely short (at most 30 runes and 8 words) and not a list item.
func singleLineHeading(s string) string {
	if !headingShape(s) {
		return ""
	}
	if st := outlineStyle(s); st != "" {
		return st
	}
	if strings.HasSuffix(s, ":") || strings.HasSuffix(s, "：") {
		return ":"
	}
	first, _ := utf8.DecodeRuneInString(s)
	if utf8.RuneCountInString(s) <= 30 && len(strings.Fields(s)) <= 8 && !strings.ContainsRune("-*+•·>#|[(（", first) &&
		!strings.Contains(s, "://") && !strings.Contains(s, "@") {
		return "plain"
	}
	return ""
}

// inParagraphHeadings marks the heading lines of a paragraph of several lines. Only strong
// marks count here: Chinese outline numbering (第一章, 一、, （一）) on a line followed by a
// body line of another style, and a first line in ALL CAPS or "Chapter 2" form. Arabic numbers
// and colons are not enough: inside a paragraph they start list items.
func inParagraphHeadings(lines []string) []string {
	out := make([]string, len(lines))
	for k := 0; k+1 < len(lines); k++ {
		s := lines[k]
		if !headingShape(s) {
			continue
		}
		st := outlineStyle(s)
		switch {
		case st == "":
			continue
		case st == "一、" || st == "（一）" || strings.HasPrefix(st, "第"):
		case k == 0 && (st == "CAPS" || reEnChapter.MatchString(s)):
		default:
			continue
		}
		if outlineStyle(lines[k+1]) != st {
			out[k] = st
		}
	}
	return out
}

// ---- Packing ----

// pack turns units into chunks: consecutive units of one section share a chunk while they fit
// in maxRunes; a longer unit is cut into pieces with overlap.
func pack(src []byte, units []unit, maxRunes, overlap int) []Chunk {
	var (
		out  []Chunk
		cur  []unit
		size int
	)
	emit := func(text string, u unit, start, end int) {
		if strings.TrimSpace(text) == "" {
			return
		}
		out = append(out, Chunk{Index: len(out), Heading: slices.Clone(u.heading), Text: text, Start: start, End: end})
	}
	flush := func() {
		if len(cur) == 0 {
			return
		}
		texts := make([]string, len(cur))
		start, end := cur[0].start, cur[0].end
		for i, u := range cur {
			texts[i] = u.text
			start, end = min(start, u.start), max(end, u.end)
		}
		if slices.ContainsFunc(cur, func(u unit) bool { return u.end == 0 }) {
			start, end = 0, 0
		}
		emit(strings.Join(texts, "\n"), cur[0], start, end)
		cur, size = nil, 0
	}
	for _, u := range units {
		n := utf8.RuneCountInString(u.text)
		if len(cur) > 0 && (u.section != cur[0].section || size+1+n > maxRunes) {
			flush()
		}
		if n <= maxRunes {
			if len(cur) > 0 {
				size++ // the newline between units
			}
			cur = append(cur, u)
			size += n
			continue
		}
		verbatim := u.end > 0 && string(src[u.start:u.end]) == u.text
		for _, p := range splitText(u.text, maxRunes, overlap) {
			start, end := u.start, u.end
			if verbatim {
				start, end = u.start+p.start, u.start+p.end
			}
			emit(u.text[p.start:p.end], u, start, end)
		}
	}
	flush()
	return out
}

// segment is a run of text that may stand alone: a sentence, a line, or a part of one cut
// to fit. content is text[start:contentEnd]; the white space after it runs to end.
type segment struct {
	start, contentEnd, end int
	runes, spaceRunes      int
}

// piece is a part of a cut unit: text[start:end], trimmed.
type piece struct{ start, end int }

// splitText cuts text (longer than maxRunes) into pieces: each holds at most maxRunes runes of
// new text, whole sentences where they fit, and after the first, the previous piece's tail of
// at most overlap runes before it — whole sentences where they fit, or else the last runes of
// the previous piece, from a word start when there is one.
func splitText(text string, maxRunes, overlap int) []piece {
	segs := segments(text, maxRunes)
	var out []piece
	prevFresh := 0 // the first segment of the previous piece's new text
	for pos := 0; pos < len(segs); {
		j, size := pos, 0
		for j < len(segs) {
			n := size + segs[j].runes
			if j > pos {
				n += segs[j-1].spaceRunes
			}
			if n > maxRunes && j > pos {
				break
			}
			size = n
			j++
		}
		start := segs[pos].start
		if len(out) > 0 && overlap > 0 {
			start = overlapStart(text, segs, prevFresh, pos, overlap)
		}
		out = append(out, piece{start, segs[j-1].contentEnd})
		prevFresh, pos = pos, j
	}
	return out
}

// overlapStart is where the overlap before segs[pos] starts: the last whole segments of
// segs[from:pos] that fit in overlap runes (white space included), or else a tail of
// segs[pos-1].
func overlapStart(text string, segs []segment, from, pos, overlap int) int {
	k, size := pos, 0
	for k > from && size+segs[k-1].runes+segs[k-1].spaceRunes <= overlap {
		size += segs[k-1].runes + segs[k-1].spaceRunes
		k--
	}
	if k < pos {
		return segs[k].start
	}
	last := segs[pos-1]
	if last.spaceRunes >= overlap {
		return segs[pos].start // nothing but white space would fit
	}
	// The last overlap runes of the segment, white space included.
	i, n := last.end, 0
	for i > last.start && n < overlap {
		_, w := utf8.DecodeLastRuneInString(text[:i])
		i -= w
		n++
	}
	// Start at a word when the tail has a space in it and does not already start at one.
	if r, _ := utf8.DecodeLastRuneInString(text[:i]); i > last.start && !unicode.IsSpace(r) {
		if sp := strings.IndexFunc(text[i:last.contentEnd], unicode.IsSpace); sp >= 0 {
			word := i + sp
			for word < last.contentEnd {
				r, w := utf8.DecodeRuneInString(text[word:])
				if !unicode.IsSpace(r) {
					break
				}
				word += w
			}
			if word < last.contentEnd {
				i = word
			}
		}
	}
	return i
}

// sentenceEnd: runes that end a sentence in Chinese by themselves, ones that end an English
// sentence before white space, and closing quotes and brackets that belong to the sentence.
const (
	cjkStops    = "。！？；"
	latinStops  = ".!?"
	closers     = "\"'”’」』）)》】]"
	clauseMarks = "，、,：:；;"
)

// segments splits text at sentence ends and line ends, and cuts any segment longer than
// maxRunes at a clause mark or white space in its second half, or else at maxRunes.
func segments(text string, maxRunes int) []segment {
	var out []segment
	add := func(start, end int) {
		contentEnd := len(strings.TrimRightFunc(text[:end], unicode.IsSpace))
		if contentEnd <= start {
			if len(out) > 0 { // white space only: it belongs to the previous segment
				out[len(out)-1].end = end
				out[len(out)-1].spaceRunes += utf8.RuneCountInString(text[start:end])
			}
			return
		}
		out = append(out, segment{start: start, contentEnd: contentEnd, end: end,
			runes: utf8.RuneCountInString(text[start:contentEnd]), spaceRunes: utf8.RuneCountInString(text[contentEnd:end])})
	}
	skipSpace := func(i int) int {
		for i < len(text) {
			r, w := utf8.DecodeRuneInString(text[i:])
			if !unicode.IsSpace(r) {
				break
			}
			i += w
		}
		return i
	}
	skipClosers := func(i int) int {
		for i < len(text) {
			r, w := utf8.DecodeRuneInString(text[i:])
			if !strings.ContainsRune(closers, r) {
				break
			}
			i += w
		}
		return i
	}
	start := 0
	for i := 0; i < len(text); {
		r, w := utf8.DecodeRuneInString(text[i:])
		i += w
		end := -1
		switch {
		case r == '\n':
			end = skipSpace(i)
		case strings.ContainsRune(cjkStops, r):
			end = skipSpace(skipClosers(i))
		case strings.ContainsRune(latinStops, r):
			j := skipClosers(i)
			if j == len(text) {
				end = j
			} else if r2, _ := utf8.DecodeRuneInString(text[j:]); unicode.IsSpace(r2) {
				end = skipSpace(j)
			}
		}
		if end >= 0 {
			for _, s := range cut(text, start, end, maxRunes) {
				add(s[0], s[1])
			}
			start, i = end, end
		}
	}
	if start < len(text) {
		for _, s := range cut(text, start, len(text), maxRunes) {
			add(s[0], s[1])
		}
	}
	return out
}

// cut splits text[start:end] into parts whose content has at most maxRunes runes, each cut
// after the last clause mark or white space in the second half of its window, or else at
// exactly maxRunes runes.
func cut(text string, start, end, maxRunes int) [][2]int {
	contentEnd := max(start, len(strings.TrimRightFunc(text[:end], unicode.IsSpace)))
	var out [][2]int
	for {
		// Walk up to maxRunes runes, remembering the last good place to cut.
		i, n, best := start, 0, -1
		for n < maxRunes && i < contentEnd {
			r, w := utf8.DecodeRuneInString(text[i:])
			i += w
			n++
			if n >= maxRunes/2 && (unicode.IsSpace(r) || strings.ContainsRune(clauseMarks, r)) {
				best = i
			}
		}
		if i >= contentEnd {
			return append(out, [2]int{start, end})
		}
		if best > start {
			i = best
		}
		// White space after the cut belongs to this part.
		for i < contentEnd {
			r, w := utf8.DecodeRuneInString(text[i:])
			if !unicode.IsSpace(r) {
				break
			}
			i += w
		}
		out = append(out, [2]int{start, i})
		start = i
	}
}
