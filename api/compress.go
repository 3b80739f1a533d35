package api

import (
	"compress/gzip"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/gin-gonic/gin"
)

// compressMinBody is the smallest response body compressed: below it the encoding's framing
// eats most of the saving.
const compressMinBody = 1024

// Encoders are pooled: a brotli writer holds hundreds of KB of tables. Brotli at quality 4
// with a 256 KiB window compresses a page or a JSON answer as well as gzip -9 in less time.
var (
	brotliWriters = sync.Pool{New: func() any { return brotli.NewWriterOptions(nil, brotli.WriterOptions{Quality: 4, LGWin: 18}) }}
	gzipWriters   = sync.Pool{New: func() any { w, _ := gzip.NewWriterLevel(nil, 5); return w }}
)

// compress encodes responses with Brotli or gzip, as the request's Accept-Encoding prefers
// (Brotli on a tie), when the body is at least compressMinBody bytes of a compressible type
// and the handler has not encoded it itself (promhttp gzips /metrics). Responses that could
// be compressed carry Vary: Accept-Encoding, compressed or not. WebSocket upgrades, HEAD and
// range requests pass untouched.
func compress() gin.HandlerFunc {
	return func(c *gin.Context) {
		r := c.Request
		if r.Method == http.MethodHead || r.Header.Get("Range") != "" || strings.HasPrefix(r.URL.Path, "/ws/") ||
			r.Header.Get("Upgrade") != "" {
			c.Next()
			return
		}
		addVary(c.Writer.Header())
		enc := negotiateEncoding(r.Header.Values("Accept-Encoding"))
		if enc == "" {
			c.Next()
			return
		}
		w := &compressWriter{ResponseWriter: c.Writer, enc: enc}
		c.Writer = w
		defer func() {
			w.finish()
			c.Writer = w.ResponseWriter
		}()
		c.Next()
	}
}

func addVary(h http.Header) {
	for _, v := range h.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f == "*" || strings.EqualFold(f, "Accept-Encoding") {
				return
			}
		}
	}
	h.Add("Vary", "Accept-Encoding")
}

// negotiateEncoding is "br", "gzip" or "" (identity) for the Accept-Encoding header values:
// the one with the higher quality, Brotli on a tie; "*" stands for those not named.
func negotiateEncoding(values []string) string {
	q := map[string]float64{}
	star := -1.0
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			name = strings.ToLower(strings.TrimSpace(name))
			quality := 1.0
			for _, p := range strings.Split(params, ";") {
				if k, val, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
					if err != nil {
						f = 0
					}
					quality = f
				}
			}
			if name == "*" {
				star = max(star, quality)
			} else if name != "" {
				q[name] = max(q[name], quality)
			}
		}
	}
	best, bestQ := "", 0.0
	for _, enc := range []string{"br", "gzip"} {
		v, ok := q[enc]
		if !ok {
			v = star
		}
		if v > bestQ {
			best, bestQ = enc, v
		}
	}
	return best
}

// compressible reports whether a body of this Content-Type is worth compressing: text, JSON,
// JavaScript, XML, SVG.
func compressible(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "text/"), strings.HasSuffix(mt, "+json"), strings.HasSuffix(mt, "+xml"):
		return true
	}
	switch mt {
	case "application/json", "application/javascript", "application/x-javascript", "application/xml",
		"image/svg+xml", "application/wasm", "application/x-ndjson":
		return true
	}
	return false
}

// compressWriter holds the body back until it knows whether to compress it: until it reaches
// compressMinBody bytes, the handler flushes, or the handler ends (finish).
type compressWriter struct {
	gin.ResponseWriter
	enc     string // "br" or "gzip": what the client takes
	buf     []byte // the body so far, while undecided
	decided bool
	out     io.WriteCloser // the encoder once compressing; nil otherwise
	headNow bool           // the handler asked for the header to go out (WriteHeaderNow)
	size    int            // body bytes the handler wrote
}

// decide compresses or not, sends the header and what is buffered. streaming: the handler
// flushed, so the body is not known to be small.
func (w *compressWriter) decide(streaming bool) {
	if w.decided {
		return
	}
	w.decided = true
	h := w.ResponseWriter.Header()
	st := w.ResponseWriter.Status()
	bodyAllowed := st >= 200 && st != http.StatusNoContent && st != http.StatusNotModified
	if ct := h.Get("Content-Type"); ct == "" && len(w.buf) > 0 {
		h.Set("Content-Type", http.DetectContentType(w.buf)) // net/http would sniff the encoded bytes
	}
	if bodyAllowed && (len(w.buf) >= compressMinBody || streaming) && h.Get("Content-Encoding") == "" &&
		compressible(h.Get("Content-Type")) && !strings.Contains(h.Get("Cache-Control"), "no-transform") {
		h.Del("Content-Length")
		h.Set("Content-Encoding", w.enc)
		if et := h.Get("ETag"); et != "" && !strings.HasPrefix(et, "W/") {
			h.Set("ETag", "W/"+et) // the bytes differ from the identity's
		}
		switch w.enc {
		case "br":
			bw := brotliWriters.Get().(*brotli.Writer)
			bw.Reset(w.ResponseWriter)
			w.out = bw
		default:
			gw := gzipWriters.Get().(*gzip.Writer)
			gw.Reset(w.ResponseWriter)
			w.out = gw
		}
	}
	buf := w.buf
	w.buf = nil
	if len(buf) == 0 {
		if w.headNow || w.out == nil {
			w.ResponseWriter.WriteHeaderNow()
		}
		return
	}
	if w.out != nil {
		_, _ = w.out.Write(buf)
		return
	}
	_, _ = w.ResponseWriter.Write(buf)
}

func (w *compressWriter) Write(p []byte) (int, error) {
	w.size += len(p)
	if !w.decided {
		w.buf = append(w.buf, p...)
		if len(w.buf) >= compressMinBody {
			w.decide(false)
		}
		return len(p), nil
	}
	if w.out != nil {
		return w.out.Write(p)
	}
	return w.ResponseWriter.Write(p)
}

func (w *compressWriter) WriteString(s string) (int, error) { return w.Write([]byte(s)) }

// WriteHeaderNow is kept until the body decides the encoding.
func (w *compressWriter) WriteHeaderNow() { w.headNow = true }

func (w *compressWriter) Written() bool {
	return w.headNow || w.size > 0 || w.ResponseWriter.Written()
}

func (w *compressWriter) Size() int {
	if !w.decided && w.size == 0 && !w.headNow {
		return w.ResponseWriter.Size()
	}
	return w.size
}

func (w *compressWriter) Flush() {
	w.decide(true)
	if f, ok := w.out.(interface{ Flush() error }); ok {
		_ = f.Flush()
	}
	w.ResponseWriter.Flush()
}

// finish ends the body: what is still held is sent, the encoder closed and pooled.
func (w *compressWriter) finish() {
	w.decide(false)
	switch out := w.out.(type) {
	case *brotli.Writer:
		_ = out.Close()
		out.Reset(nil)
		brotliWriters.Put(out)
	case *gzip.Writer:
		_ = out.Close()
		out.Reset(nil)
		gzipWriters.Put(out)
	}
	w.out = nil
}
