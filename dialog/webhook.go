package dialog

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The headers of a webhook request. A receiver checks the first two with VerifyWebhook and may
// use the third to recognise a retry of a request it has already handled.
const (
	HeaderWebhookTimestamp = "X-Kefu-Timestamp" // unix seconds when the attempt was signed
	HeaderWebhookSignature = "X-Kefu-Signature" // v1=<hex HMAC-SHA256(secret, "ts.METHOD./path?query." + body)>
	HeaderIdempotencyKey   = "Idempotency-Key"  // one random key for every attempt of one Call
)

// Webhook defaults and limits.
const (
	defaultWebhookTimeout     = 5 * time.Second
	defaultWebhookMaxResponse = 1 << 20 // 1 MiB
	maxWebhookRetries         = 5
	defaultBackoffBase        = 200 * time.Millisecond
	defaultMaxRetryAfter      = 5 * time.Second
	defaultWebhookMaxSkew     = 5 * time.Minute
	webhookUserAgent          = "kefu-webhook/1"
)

// Errors VerifyWebhook returns, wrapped with the detail.
var (
	// ErrWebhookSignature: the signature or timestamp header is missing or malformed, or the
	// signature does not match the body.
	ErrWebhookSignature = errors.New("webhook signature invalid")
	// ErrWebhookStale: the timestamp is further from now than the allowed skew (a replay, or a
	// clock far off).
	ErrWebhookStale = errors.New("webhook timestamp outside the allowed window")
)

// WebhookClient calls the HTTP services flows name. Safe for concurrent use; the zero value is
// ready to use.
type WebhookClient struct {
	// HTTP makes the requests. nil: a shared client with sane transport defaults, no overall
	// Timeout (every attempt has its own) and no redirects (a signed request goes only where
	// the flow says; a 3xx is an error).
	HTTP *http.Client
	// Secret, when set, signs every request (HeaderWebhookTimestamp, HeaderWebhookSignature).
	Secret []byte
	// Log gets a Warn record per failed attempt. nil: slog.Default().
	Log *slog.Logger
	// MaxResponse bounds a response body in bytes (default 1 MiB); a longer one is an error.
	MaxResponse int64

	// backoffBase is the wait before the first retry (default 200ms); it doubles per retry.
	// maxRetryAfter caps the wait a Retry-After header asks for (default 5s). Tests shrink both.
	backoffBase   time.Duration
	maxRetryAfter time.Duration
}

// WebhookCall is one call.
type WebhookCall struct {
	// Method defaults to POST. Only POST, PUT and PATCH send a body.
	Method string
	URL    string
	// Body is JSON-encoded for POST, PUT and PATCH (nil sends an empty body) and ignored for
	// other methods.
	Body any
	// Timeout bounds each attempt, from connecting to reading the whole response (default 5s).
	Timeout time.Duration
	// Retries is the number of extra attempts after the first (default 0, at most 5).
	Retries int
	// IdempotencyKey is sent on every attempt (empty: a random one per Call). A caller that may
	// make the same call again after a crash or a rolled-back turn passes a key of its own
	// that is the same both times.
	IdempotencyKey string
}

// WebhookError is a failed Call. Its message names the method, the URL without its query
// string, the last status and the number of attempts; it never includes a body.
type WebhookError struct {
	Method   string
	URL      string // scheme, host and path only: no user info, query or fragment
	Status   int    // the last HTTP status received; 0 when there was no response
	Attempts int    // attempts made
	Err      error  // why, when it is more than the status (a network error, a timeout…)
}

func (e *WebhookError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "webhook %s %s: ", e.Method, e.URL)
	if e.Status != 0 {
		fmt.Fprintf(&b, "status %d", e.Status)
		if e.Err != nil {
			b.WriteString(": ")
		}
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	if e.Attempts == 1 {
		b.WriteString(" (1 attempt)")
	} else {
		fmt.Fprintf(&b, " (%d attempts)", e.Attempts)
	}
	return b.String()
}

func (e *WebhookError) Unwrap() error { return e.Err }

// defaultWebhookHTTP is the client used when WebhookClient.HTTP is nil, built on first use.
var defaultWebhookHTTP = sync.OnceValue(func() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   16, // flows call few hosts, often
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   5 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
})

// Call makes the call, retrying network errors, timeouts, 429 and 5xx with exponential backoff
// (200ms, 400ms, 800ms… with ±20% jitter, honouring Retry-After up to 5s), never 4xx. It
// returns the response body and status (2xx) or a *WebhookError. It stops as soon as ctx is
// done, and does not start a wait that would outlast ctx's deadline.
func (c *WebhookClient) Call(ctx context.Context, call WebhookCall) (body []byte, status int, err error) {
	method := strings.ToUpper(strings.TrimSpace(call.Method))
	if method == "" {
		method = http.MethodPost
	}
	u, err := url.Parse(call.URL)
	if err != nil {
		// url.Parse's error quotes the whole URL, query and all: keep only the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, 0, fmt.Errorf("webhook %s: invalid URL: %w", method, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, 0, fmt.Errorf("webhook %s %s: URL must be absolute http or https", method, redactURL(u))
	}
	safeURL := redactURL(u)

	var payload []byte
	if (method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch) && call.Body != nil {
		if payload, err = json.Marshal(call.Body); err != nil {
			return nil, 0, &WebhookError{Method: method, URL: safeURL, Err: fmt.Errorf("encode body: %w", err)}
		}
	}
	timeout := call.Timeout
	if timeout <= 0 {
		timeout = defaultWebhookTimeout
	}
	attempts := 1 + min(max(call.Retries, 0), maxWebhookRetries)
	key := call.IdempotencyKey // the same on every attempt, so the receiver can drop repeats
	if key == "" {
		key = rand.Text()
	}

	log := c.Log
	if log == nil {
		log = slog.Default()
	}
	for attempt := 1; ; attempt++ {
		res := c.attempt(ctx, method, call.URL, payload, key, timeout)
		if res.err == nil && res.status >= 200 && res.status < 300 {
			return res.body, res.status, nil
		}
		werr := &WebhookError{Method: method, URL: safeURL, Status: res.status, Attempts: attempt, Err: res.err}
		errText := ""
		if res.err != nil {
			errText = res.err.Error()
		}
		log.LogAttrs(ctx, slog.LevelWarn, "webhook attempt failed",
			slog.String("method", method), slog.String("url", safeURL),
			slog.Int("attempt", attempt), slog.Int("max_attempts", attempts),
			slog.Int("status", res.status), slog.String("error", errText))
		if !res.retry || attempt >= attempts || ctx.Err() != nil {
			return nil, res.status, werr
		}

		wait := c.backoff(attempt)
		if res.retryAfter > wait {
			wait = res.retryAfter
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			// The next attempt could not start before the caller gives up anyway.
			return nil, res.status, werr
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			werr.Err = fmt.Errorf("%w (while waiting to retry: %s)", ctx.Err(), werr.reason())
			return nil, res.status, werr
		case <-timer.C:
		}
	}
}

// reason is what went wrong in the last attempt, without the URL.
func (e *WebhookError) reason() string {
	if e.Err != nil {
		return e.Err.Error()
	}
	return "status " + strconv.Itoa(e.Status)
}

// attemptResult is the outcome of one attempt. A non-2xx status without err is a failure too.
type attemptResult struct {
	body       []byte
	status     int
	err        error
	retry      bool          // worth another attempt
	retryAfter time.Duration // what the server asked us to wait (capped), 0 if nothing
}

// attempt sends one signed request and reads the response, all within timeout.
func (c *WebhookClient) attempt(ctx context.Context, method, rawURL string, payload []byte, key string, timeout time.Duration) attemptResult {
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(actx, method, rawURL, body)
	if err != nil {
		return attemptResult{err: err}
	}
	req.Header.Set("User-Agent", webhookUserAgent)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderIdempotencyKey, key)
	if len(c.Secret) > 0 {
		// Signed per attempt: a retry after a long wait still carries a fresh timestamp.
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		req.Header.Set(HeaderWebhookTimestamp, ts)
		req.Header.Set(HeaderWebhookSignature, "v1="+webhookSignature(c.Secret, ts, method, req.URL.RequestURI(), payload))
	}

	client := c.HTTP
	if client == nil {
		client = defaultWebhookHTTP()
	}
	resp, err := client.Do(req)
	if err != nil {
		return transportFailure(ctx, actx, err, timeout)
	}
	defer resp.Body.Close()

	res := attemptResult{status: resp.StatusCode}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		// Read a little of what is left so the connection can be reused; the body is not kept.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
			res.retry = true
			res.retryAfter = c.parseRetryAfter(resp.Header.Get("Retry-After"))
		}
		return res
	}

	limit := c.MaxResponse
	if limit <= 0 {
		limit = defaultWebhookMaxResponse
	}
	if resp.ContentLength > limit {
		res.err = fmt.Errorf("response of %d bytes is larger than the %d allowed", resp.ContentLength, limit)
		return res
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		failed := transportFailure(ctx, actx, err, timeout)
		failed.status = resp.StatusCode
		return failed
	}
	if int64(len(data)) > limit {
		res.err = fmt.Errorf("response is larger than the %d bytes allowed", limit)
		return res
	}
	res.body = data
	return res
}

// transportFailure classifies an error sending a request or reading its response: the caller's
// context ending is final, so is a certificate the server cannot prove; an attempt's timeout
// and other network errors are worth a retry.
func transportFailure(ctx, actx context.Context, err error, timeout time.Duration) attemptResult {
	if ctx.Err() != nil {
		return attemptResult{err: ctx.Err()}
	}
	if errors.Is(actx.Err(), context.DeadlineExceeded) {
		return attemptResult{err: fmt.Errorf("no complete response within %v: %w", timeout, context.DeadlineExceeded), retry: true}
	}
	// *url.Error quotes the full URL, query string and all: keep only the cause.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var cert *tls.CertificateVerificationError
	return attemptResult{err: err, retry: !errors.As(err, &cert)}
}

// backoff is the wait after failed attempt n (1-based): base·2^(n-1), ±20%.
func (c *WebhookClient) backoff(n int) time.Duration {
	base := c.backoffBase
	if base <= 0 {
		base = defaultBackoffBase
	}
	d := base << (n - 1)
	return time.Duration(float64(d) * (0.8 + 0.4*mathrand.Float64()))
}

// parseRetryAfter reads a Retry-After header, in seconds or as an HTTP date, capped at
// maxRetryAfter; 0 when absent or unreadable.
func (c *WebhookClient) parseRetryAfter(v string) time.Duration {
	limit := c.maxRetryAfter
	if limit <= 0 {
		limit = defaultMaxRetryAfter
	}
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(limit/time.Second)+1 {
			return limit // also keeps secs·time.Second from overflowing
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t)
	}
	return max(min(d, limit), 0)
}

// webhookSignature is hex(HMAC-SHA256(secret, timestamp + "." + method + "." + request URI +
// "." + body)): a signature holds only for the request it was made for, so a captured one
// cannot be replayed on another path or method.
func webhookSignature(secret []byte, timestamp, method, uri string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	for _, part := range []string{timestamp, method, uri} {
		mac.Write([]byte(part))
		mac.Write([]byte{'.'})
	}
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// redactURL is u without user info, query string or fragment: safe to log.
func redactURL(u *url.URL) string {
	r := *u
	r.User = nil
	r.RawQuery = ""
	r.ForceQuery = false
	r.Fragment = ""
	r.RawFragment = ""
	return r.String()
}

// VerifyWebhook checks a request a WebhookClient signed with secret, for receivers: its
// timestamp must be within maxSkew of now (≤ 0: 5 minutes) and its signature must match body,
// the exact bytes of the request body (read it first; empty for GET). The signature header may
// list several comma-separated values; one matching v1 value is enough. Errors wrap
// ErrWebhookSignature or ErrWebhookStale.
func VerifyWebhook(secret []byte, r *http.Request, body []byte, now time.Time, maxSkew time.Duration) error {
	if len(secret) == 0 {
		return fmt.Errorf("%w: no secret to verify with", ErrWebhookSignature)
	}
	if maxSkew <= 0 {
		maxSkew = defaultWebhookMaxSkew
	}
	ts := r.Header.Get(HeaderWebhookTimestamp)
	if ts == "" {
		return fmt.Errorf("%w: missing %s", ErrWebhookSignature, HeaderWebhookTimestamp)
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: malformed %s", ErrWebhookSignature, HeaderWebhookTimestamp)
	}
	// Compare in whole seconds, as bounds on secs: no arithmetic on the untrusted value, so an
	// absurd timestamp cannot overflow its way into the window.
	window := int64(maxSkew / time.Second)
	if nowSecs := now.Unix(); secs < nowSecs-window || secs > nowSecs+window {
		return fmt.Errorf("%w: timestamp %d is more than %v from now", ErrWebhookStale, secs, maxSkew)
	}
	header := r.Header.Get(HeaderWebhookSignature)
	if header == "" {
		return fmt.Errorf("%w: missing %s", ErrWebhookSignature, HeaderWebhookSignature)
	}
	want, _ := hex.DecodeString(webhookSignature(secret, ts, r.Method, r.URL.RequestURI(), body))
	for part := range strings.SplitSeq(header, ",") {
		sig, ok := strings.CutPrefix(strings.TrimSpace(part), "v1=")
		if !ok {
			continue
		}
		if got, err := hex.DecodeString(sig); err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("%w: signature does not match", ErrWebhookSignature)
}
