package dialog

// These tests are in package dialog so they can shrink the client's backoff; they need no
// database.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var testSecret = []byte("s3cret-webhook-key")

// fastClient is a client whose retries wait about a millisecond, logging into the test output.
func fastClient(t *testing.T, secret []byte) *WebhookClient {
	t.Helper()
	return &WebhookClient{
		Secret:        secret,
		Log:           slog.New(slog.NewTextHandler(t.Output(), nil)),
		backoffBase:   time.Millisecond,
		maxRetryAfter: 20 * time.Millisecond,
	}
}

// received is one request a test server saw.
type received struct {
	method string
	header http.Header
	body   []byte
	query  string
	uri    string // path and query, as signed
}

// recorder is a test server that records requests and answers with respond(n, w), n counting
// requests from 1.
type recorder struct {
	mu   sync.Mutex
	reqs []received
}

func (rec *recorder) server(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, received{r.Method, r.Header.Clone(), body, r.URL.RawQuery, r.URL.RequestURI()})
		n := len(rec.reqs)
		rec.mu.Unlock()
		respond(n, w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func (rec *recorder) all() []received {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]received(nil), rec.reqs...)
}

// verify checks a recorded request's signature as a receiver would.
func (r received) verify(secret []byte, now time.Time, skew time.Duration) error {
	req := httptest.NewRequest(r.method, r.uri, bytes.NewReader(r.body))
	req.Header = r.header
	return VerifyWebhook(secret, req, r.body, now, skew)
}

func TestWebhookSignedSuccess(t *testing.T) {
	t.Parallel()
	var rec recorder
	srv := rec.server(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"RF-100001"}`)
	})
	c := fastClient(t, testSecret)
	body, status, err := c.Call(t.Context(), WebhookCall{
		URL:  srv.URL + "/refunds?token=abc",
		Body: map[string]any{"slots": map[string]string{"order_number": "SO1"}},
	})
	if err != nil || status != 200 || string(body) != `{"id":"RF-100001"}` {
		t.Fatalf("Call = %q, %d, %v", body, status, err)
	}
	reqs := rec.all()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPost || r.query != "token=abc" {
		t.Errorf("method %s query %q", r.method, r.query)
	}
	if got := string(r.body); got != `{"slots":{"order_number":"SO1"}}` {
		t.Errorf("body %s", got)
	}
	for h, want := range map[string]string{"Content-Type": "application/json", "User-Agent": "kefu-webhook/1"} {
		if got := r.header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if r.header.Get(HeaderIdempotencyKey) == "" {
		t.Error("no Idempotency-Key")
	}
	if !strings.HasPrefix(r.header.Get(HeaderWebhookSignature), "v1=") {
		t.Errorf("signature header %q", r.header.Get(HeaderWebhookSignature))
	}
	if err := r.verify(testSecret, time.Now(), time.Minute); err != nil {
		t.Errorf("VerifyWebhook: %v", err)
	}
	if err := r.verify([]byte("another secret"), time.Now(), time.Minute); !errors.Is(err, ErrWebhookSignature) {
		t.Errorf("VerifyWebhook with the wrong secret = %v, want ErrWebhookSignature", err)
	}
	replayed := r
	replayed.uri, replayed.method = "/demo/orders/OTHER/cancel", "POST"
	if err := replayed.verify(testSecret, time.Now(), time.Minute); !errors.Is(err, ErrWebhookSignature) {
		t.Errorf("a signature replayed on another path = %v, want ErrWebhookSignature", err)
	}
}

func TestWebhookGetUnsigned(t *testing.T) {
	t.Parallel()
	var rec recorder
	srv := rec.server(t, func(_ int, w http.ResponseWriter, _ *http.Request) { io.WriteString(w, `{}`) })
	c := fastClient(t, nil)
	if _, _, err := c.Call(t.Context(), WebhookCall{Method: "get", URL: srv.URL + "/orders/1?x=1", Body: map[string]int{"ignored": 1}}); err != nil {
		t.Fatal(err)
	}
	r := rec.all()[0]
	if r.method != http.MethodGet || len(r.body) != 0 || r.query != "x=1" {
		t.Errorf("method %s body %q query %q", r.method, r.body, r.query)
	}
	if r.header.Get(HeaderWebhookSignature) != "" || r.header.Get(HeaderWebhookTimestamp) != "" {
		t.Error("a client without a secret signed the request")
	}
}

func TestWebhookSignedGet(t *testing.T) {
	t.Parallel()
	var rec recorder
	srv := rec.server(t, func(_ int, w http.ResponseWriter, _ *http.Request) { io.WriteString(w, `{}`) })
	if _, _, err := fastClient(t, testSecret).Call(t.Context(), WebhookCall{Method: http.MethodGet, URL: srv.URL}); err != nil {
		t.Fatal(err)
	}
	if err := rec.all()[0].verify(testSecret, time.Now(), time.Minute); err != nil {
		t.Errorf("a GET (empty body) does not verify: %v", err)
	}
}

func TestWebhookRetriesThenSucceeds(t *testing.T) {
	t.Parallel()
	var rec recorder
	srv := rec.server(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n < 3 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, `{"ok":true}`)
	})
	body, status, err := fastClient(t, testSecret).Call(t.Context(), WebhookCall{URL: srv.URL, Body: map[string]int{"n": 1}, Retries: 3})
	if err != nil || status != 200 || string(body) != `{"ok":true}` {
		t.Fatalf("Call = %q, %d, %v", body, status, err)
	}
	reqs := rec.all()
	if len(reqs) != 3 {
		t.Fatalf("%d attempts, want 3", len(reqs))
	}
	key := reqs[0].header.Get(HeaderIdempotencyKey)
	for i, r := range reqs {
		if got := r.header.Get(HeaderIdempotencyKey); got != key || key == "" {
			t.Errorf("attempt %d Idempotency-Key %q, first was %q", i+1, got, key)
		}
		if err := r.verify(testSecret, time.Now(), time.Minute); err != nil {
			t.Errorf("attempt %d: %v", i+1, err)
		}
	}

	// Another Call is another key.
	if _, _, err := fastClient(t, testSecret).Call(t.Context(), WebhookCall{URL: srv.URL}); err != nil {
		t.Fatal(err)
	}
	if other := rec.all()[3].header.Get(HeaderIdempotencyKey); other == key {
		t.Error("two calls shared an Idempotency-Key")
	}
}

func TestWebhookRetriesExhausted(t *testing.T) {
	t.Parallel()
	var rec recorder
	srv := rec.server(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	})
	_, status, err := fastClient(t, nil).Call(t.Context(), WebhookCall{URL: srv.URL + "/hook?secret=xyz", Retries: 2})
	var werr *WebhookError
	if !errors.As(err, &werr) || status != http.StatusBadGateway || werr.Attempts != 3 || len(rec.all()) != 3 {
		t.Fatalf("Call = %d, %v after %d requests", status, err, len(rec.all()))
	}
	msg := err.Error()
	for _, want := range []string{srv.URL + "/hook", "502", "3 attempts"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "xyz") {
		t.Errorf("error %q shows the query string", msg)
	}
}

func TestWebhookRetriesCapped(t *testing.T) {
	t.Parallel()
	var rec recorder
	srv := rec.server(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	_, _, err := fastClient(t, nil).Call(t.Context(), WebhookCall{URL: srv.URL, Retries: 50})
	if err == nil || len(rec.all()) != 1+maxWebhookRetries {
		t.Fatalf("%d attempts (%v), want %d", len(rec.all()), err, 1+maxWebhookRetries)
	}
}

func TestWebhookNoRetryOn4xx(t *testing.T) {
	t.Parallel()
	for _, code := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound, http.StatusFound} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			t.Parallel()
			var rec recorder
			srv := rec.server(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Location", "/elsewhere")
				w.WriteHeader(code)
			})
			body, status, err := fastClient(t, nil).Call(t.Context(), WebhookCall{URL: srv.URL + "/x?q=1", Retries: 3})
			if err == nil || body != nil || status != code || len(rec.all()) != 1 {
				t.Fatalf("Call = %q, %d, %v after %d requests; want one request and an error", body, status, err, len(rec.all()))
			}
			if want := "webhook POST " + srv.URL + "/x: status " + strconv.Itoa(code) + " (1 attempt)"; err.Error() != want {
				t.Errorf("error %q, want %q", err, want)
			}
		})
	}
}

func TestWebhookRetryAfter(t *testing.T) {
	t.Parallel()
	var rec recorder
	srv := rec.server(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", "1") // capped to the client's 20ms
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		io.WriteString(w, "{}")
	})
	start := time.Now()
	if _, _, err := fastClient(t, nil).Call(t.Context(), WebhookCall{URL: srv.URL, Retries: 1}); err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed < 20*time.Millisecond {
		t.Errorf("retried after %v, before the Retry-After", elapsed)
	}
	if len(rec.all()) != 2 {
		t.Errorf("%d attempts, want 2", len(rec.all()))
	}
}

func TestWebhookAttemptTimeout(t *testing.T) {
	t.Parallel()
	var rec recorder
	srv := rec.server(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		select { // hang until the client gives up
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	})
	start := time.Now()
	_, status, err := fastClient(t, nil).Call(t.Context(), WebhookCall{URL: srv.URL, Timeout: 40 * time.Millisecond, Retries: 2})
	if !errors.Is(err, context.DeadlineExceeded) || status != 0 {
		t.Fatalf("Call = %d, %v; want a timeout", status, err)
	}
	// The client counts its attempts; the server may not see one whose connection the
	// 40 ms timeout cut before it was accepted (a loaded test machine).
	if n := len(rec.all()); n < 1 || n > 3 {
		t.Errorf("the server saw %d attempts, want 1 to 3", n)
	}
	if !strings.Contains(err.Error(), "(3 attempts)") {
		t.Errorf("error %q does not count the attempts", err)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("took %v", elapsed)
	}
}

func TestWebhookOversizeResponse(t *testing.T) {
	t.Parallel()
	var rec recorder
	srv := rec.server(t, func(n int, w http.ResponseWriter, r *http.Request) {
		size, _ := strconv.Atoi(r.URL.Query().Get("size"))
		if r.URL.Query().Has("chunked") {
			w.(http.Flusher).Flush() // no Content-Length: the client must count
		}
		w.Write(bytes.Repeat([]byte("x"), size))
	})
	c := fastClient(t, nil)
	c.MaxResponse = 10
	if body, _, err := c.Call(t.Context(), WebhookCall{URL: srv.URL + "?size=10"}); err != nil || len(body) != 10 {
		t.Fatalf("a response of exactly MaxResponse: %q, %v", body, err)
	}
	for _, q := range []string{"?size=11", "?size=11&chunked"} {
		before := len(rec.all())
		body, status, err := c.Call(t.Context(), WebhookCall{URL: srv.URL + q, Retries: 2})
		if err == nil || body != nil || status != 200 || !strings.Contains(err.Error(), "larger than") {
			t.Errorf("%s: Call = %q, %d, %v; want a too-large error", q, body, status, err)
		}
		if n := len(rec.all()) - before; n != 1 {
			t.Errorf("%s: %d attempts; a too-large response is not retried", q, n)
		}
	}
}

func TestWebhookContextCancelStopsRetries(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var rec recorder
	srv := rec.server(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		time.AfterFunc(30*time.Millisecond, cancel) // cancelled while the client waits to retry
	})
	c := fastClient(t, nil)
	c.backoffBase = 10 * time.Second
	start := time.Now()
	_, status, err := c.Call(ctx, WebhookCall{URL: srv.URL, Retries: 5})
	if !errors.Is(err, context.Canceled) || status != http.StatusServiceUnavailable {
		t.Fatalf("Call = %d, %v; want context.Canceled", status, err)
	}
	if elapsed := time.Since(start); elapsed > 500*time.Millisecond {
		t.Errorf("returned %v after the call, not promptly", elapsed)
	}
	if n := len(rec.all()); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}

func TestWebhookDeadlineTooShortToRetry(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	var rec recorder
	srv := rec.server(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	c := fastClient(t, nil)
	c.backoffBase = 10 * time.Second
	start := time.Now()
	if _, _, err := c.Call(ctx, WebhookCall{URL: srv.URL, Retries: 5}); err == nil {
		t.Fatal("no error")
	}
	if elapsed := time.Since(start); elapsed > 100*time.Millisecond {
		t.Errorf("waited %v for a retry that could not happen before the deadline", elapsed)
	}
}

func TestWebhookNetworkErrorRetried(t *testing.T) {
	t.Parallel()
	// A port nothing listens on: take one, then close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	var logs bytes.Buffer
	c := fastClient(t, testSecret)
	c.Log = slog.New(slog.NewTextHandler(&logs, nil))
	_, status, err := c.Call(t.Context(), WebhookCall{URL: "http://" + addr + "/hook?api_key=hidden", Body: map[string]string{"phone": "13800000000"}, Retries: 2})
	var werr *WebhookError
	if !errors.As(err, &werr) || werr.Attempts != 3 || status != 0 {
		t.Fatalf("Call = %d, %v; want an error after 3 attempts", status, err)
	}
	if strings.Contains(err.Error(), "hidden") {
		t.Errorf("error %q shows the query string", err)
	}
	out := logs.String()
	if got := strings.Count(out, "level=WARN"); got != 3 {
		t.Errorf("%d Warn records, want one per attempt:\n%s", got, out)
	}
	for _, leak := range []string{"hidden", "13800000000", string(testSecret)} {
		if strings.Contains(out, leak) {
			t.Errorf("the log shows %q:\n%s", leak, out)
		}
	}
	if !strings.Contains(out, "url=http://"+addr+"/hook ") || !strings.Contains(out, "attempt=3") {
		t.Errorf("the log does not name the url and attempt:\n%s", out)
	}
}

func TestWebhookBadRequests(t *testing.T) {
	t.Parallel()
	c := fastClient(t, nil)
	for _, call := range []WebhookCall{
		{URL: "ftp://example.com/x"},
		{URL: "/relative"},
		{URL: "http://exa mple.com/?token=secret"},
		{URL: "http://example.com", Body: func() {}}, // not JSON
	} {
		if _, _, err := c.Call(t.Context(), call); err == nil {
			t.Errorf("%q: no error", call.URL)
		} else if strings.Contains(err.Error(), "token=secret") {
			t.Errorf("error %q shows the query string", err)
		}
	}
}

func TestVerifyWebhook(t *testing.T) {
	t.Parallel()
	var rec recorder
	srv := rec.server(t, func(_ int, w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "{}") })
	if _, _, err := fastClient(t, testSecret).Call(t.Context(), WebhookCall{URL: srv.URL, Body: map[string]any{"amount": "59.90"}}); err != nil {
		t.Fatal(err)
	}
	signed := rec.all()[0]
	ts, _ := strconv.ParseInt(signed.header.Get(HeaderWebhookTimestamp), 10, 64)
	at := time.Unix(ts, 0)

	if err := signed.verify(testSecret, at, 5*time.Minute); err != nil {
		t.Fatalf("the untouched request: %v", err)
	}

	tampered := signed
	tampered.body = bytes.Replace(signed.body, []byte("59.90"), []byte("99.90"), 1)
	if err := tampered.verify(testSecret, at, 5*time.Minute); !errors.Is(err, ErrWebhookSignature) {
		t.Errorf("tampered body: %v, want ErrWebhookSignature", err)
	}

	for _, now := range []time.Time{at.Add(6 * time.Minute), at.Add(-6 * time.Minute)} {
		if err := signed.verify(testSecret, now, 5*time.Minute); !errors.Is(err, ErrWebhookStale) {
			t.Errorf("checked %v later: %v, want ErrWebhookStale", now.Sub(at), err)
		}
	}
	if err := signed.verify(testSecret, at.Add(4*time.Minute), 0); err != nil {
		t.Errorf("maxSkew 0 is 5 minutes: %v", err)
	}

	// A replayed body under a new timestamp does not verify.
	moved := signed
	moved.header = signed.header.Clone()
	moved.header.Set(HeaderWebhookTimestamp, strconv.FormatInt(ts+60, 10))
	if err := moved.verify(testSecret, at, 5*time.Minute); !errors.Is(err, ErrWebhookSignature) {
		t.Errorf("new timestamp, old signature: %v", err)
	}

	// Rotation: one matching value among several is enough.
	rotated := signed
	rotated.header = signed.header.Clone()
	rotated.header.Set(HeaderWebhookSignature, "v1=00ff, "+signed.header.Get(HeaderWebhookSignature))
	if err := rotated.verify(testSecret, at, 5*time.Minute); err != nil {
		t.Errorf("several signatures: %v", err)
	}

	for name, edit := range map[string]func(h http.Header){
		"no timestamp":        func(h http.Header) { h.Del(HeaderWebhookTimestamp) },
		"malformed timestamp": func(h http.Header) { h.Set(HeaderWebhookTimestamp, "yesterday") },
		"no signature":        func(h http.Header) { h.Del(HeaderWebhookSignature) },
		"other scheme":        func(h http.Header) { h.Set(HeaderWebhookSignature, "v0="+h.Get(HeaderWebhookSignature)[3:]) },
		"not hex":             func(h http.Header) { h.Set(HeaderWebhookSignature, "v1=zz") },
	} {
		bad := signed
		bad.header = signed.header.Clone()
		edit(bad.header)
		if err := bad.verify(testSecret, at, 5*time.Minute); !errors.Is(err, ErrWebhookSignature) {
			t.Errorf("%s: %v, want ErrWebhookSignature", name, err)
		}
	}
	if err := signed.verify(nil, at, 5*time.Minute); err == nil {
		t.Error("verified without a secret")
	}
}

// The body a Call sends is the exact JSON encoding of Body.
func TestWebhookBodyEncoding(t *testing.T) {
	t.Parallel()
	var rec recorder
	srv := rec.server(t, func(_ int, w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "{}") })
	in := map[string]any{"session_id": 7, "slots": map[string]string{"address": "上海市浦东新区 <1>"}}
	if _, _, err := fastClient(t, nil).Call(t.Context(), WebhookCall{Method: http.MethodPut, URL: srv.URL, Body: in}); err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(in)
	if got := rec.all()[0]; got.method != http.MethodPut || !bytes.Equal(got.body, want) {
		t.Errorf("%s %s, want PUT %s", got.method, got.body, want)
	}
}
