package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kefu-dev/kefu/dialog"
	"github.com/kefu-dev/kefu/handoff"
	"github.com/kefu-dev/kefu/internal/pgtest"
	"github.com/kefu-dev/kefu/nlu"
	"github.com/kefu-dev/kefu/retrieval"
)

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// serveBare is a server without a database or an engine: enough for the limits, the
// compression and the WebSocket plumbing up to hello.
func serveBare(t *testing.T, d Deps) (*Server, string) {
	t.Helper()
	d.Log = testLog(t)
	s := New(d)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, ts.URL
}

func wsURL(base, path string) string { return "ws" + strings.TrimPrefix(base, "http") + path }

// errorCode is the code of an API error body.
func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Error errorBody `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return string(e.Error.Code)
}

func get(t *testing.T, client *http.Client, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, body
}

func TestIPLimits(t *testing.T) {
	t.Parallel()

	t.Run("RequestRate", func(t *testing.T) {
		t.Parallel()
		_, url := serveBare(t, Deps{Limits: IPLimits{RequestRate: 0.5, RequestBurst: 2}}) // loopback not exempt
		for i := range 2 {
			if res, body := get(t, http.DefaultClient, url+"/"); res.StatusCode != http.StatusOK {
				t.Fatalf("request %d: %d %s, want 200 within the burst", i+1, res.StatusCode, body)
			}
		}
		res, body := get(t, http.DefaultClient, url+"/static/kefu.css")
		if res.StatusCode != http.StatusTooManyRequests || errorCode(t, body) != "rate_limited" {
			t.Fatalf("third request: %d %s, want 429 rate_limited", res.StatusCode, body)
		}
		if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || s < 1 || s > 2 {
			t.Fatalf("Retry-After %q, want 1 or 2 seconds (one token every 2 s)", res.Header.Get("Retry-After"))
		}
		if !strings.Contains(string(body), "too many requests from your address") {
			t.Fatalf("body %s does not say what happened", body)
		}
		for _, probe := range []string{"/healthz", "/readyz", "/metrics"} {
			if res, _ := get(t, http.DefaultClient, url+probe); res.StatusCode == http.StatusTooManyRequests {
				t.Errorf("%s was rate limited: probes must not be", probe)
			}
		}
	})

	t.Run("Exempt", func(t *testing.T) {
		t.Parallel()
		loopback, _ := ParsePrefixes("127.0.0.0/8, ::1")
		_, url := serveBare(t, Deps{Limits: IPLimits{RequestRate: 0.5, RequestBurst: 1, MaxConns: 1, Exempt: loopback}})
		for i := range 5 {
			if res, body := get(t, http.DefaultClient, url+"/"); res.StatusCode != http.StatusOK {
				t.Fatalf("request %d from loopback: %d %s, want 200 (exempt)", i+1, res.StatusCode, body)
			}
		}
		for i := range 3 {
			ws, _, err := websocket.DefaultDialer.Dial(wsURL(url, "/ws/customer"), nil)
			if err != nil {
				t.Fatalf("connection %d from loopback: %v (exempt)", i+1, err)
			}
			defer ws.Close()
		}
	})

	t.Run("Connections", func(t *testing.T) {
		t.Parallel()
		_, url := serveBare(t, Deps{Limits: IPLimits{MaxConns: 2}})
		var open []*websocket.Conn
		for i := range 2 {
			ws, _, err := websocket.DefaultDialer.Dial(wsURL(url, "/ws/customer"), nil)
			if err != nil {
				t.Fatalf("connection %d: %v", i+1, err)
			}
			open = append(open, ws)
		}
		ws, res, err := websocket.DefaultDialer.Dial(wsURL(url, "/ws/customer"), nil)
		if err == nil {
			ws.Close()
			t.Fatal("a third connection from one address was accepted; the cap is 2")
		}
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" || errorCode(t, body) != "rate_limited" ||
			!strings.Contains(string(body), "at most 2") {
			t.Fatalf("third connection: %d Retry-After %q %s, want 429 with Retry-After and the cap", res.StatusCode, res.Header.Get("Retry-After"), body)
		}
		// A closed connection gives its slot back.
		open[0].Close()
		deadline := time.Now().Add(5 * time.Second)
		for {
			ws, _, err := websocket.DefaultDialer.Dial(wsURL(url, "/ws/customer"), nil)
			if err == nil {
				ws.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no connection accepted after one of the two closed: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		open[1].Close()
		if m := scrape(t, url); !strings.Contains(m, "\nkefu_ip_limited_total{limit=\"connections\"} ") ||
			strings.Contains(m, "\nkefu_ip_limited_total{limit=\"connections\"} 0\n") {
			t.Errorf("metrics do not count the refused connection:\n%s", grepLines(m, "kefu_ip_limited"))
		}
	})

	t.Run("ConnectionRate", func(t *testing.T) {
		t.Parallel()
		_, url := serveBare(t, Deps{Limits: IPLimits{ConnRate: 0.1, ConnBurst: 1}})
		ws, _, err := websocket.DefaultDialer.Dial(wsURL(url, "/ws/customer"), nil)
		if err != nil {
			t.Fatal(err)
		}
		ws.Close()
		_, res, err := websocket.DefaultDialer.Dial(wsURL(url, "/ws/customer"), nil)
		if err == nil || res == nil || res.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("second connection at once: %v, want 429", err)
		}
		if s, _ := strconv.Atoi(res.Header.Get("Retry-After")); s < 9 || s > 10 {
			t.Fatalf("Retry-After %q, want 10 s (one connection every 10 s)", res.Header.Get("Retry-After"))
		}
	})

	t.Run("ClientAddress", func(t *testing.T) {
		t.Parallel()
		proxies, _ := ParsePrefixes("10.0.0.0/8")
		tbl := newIPTable(IPLimits{RequestRate: 1, TrustedProxies: proxies}, nil, testLog(t))
		tests := []struct {
			name, remote, xff, want string
		}{
			{"Direct", "198.51.100.1:5000", "", "198.51.100.1"},
			{"ForgedHeader", "198.51.100.1:5000", "203.0.113.7", "198.51.100.1"},
			{"TrustedProxy", "10.1.1.1:5000", "203.0.113.7", "203.0.113.7"},
			{"ProxyChain", "10.1.1.1:5000", "192.0.2.9, 203.0.113.7, 10.2.2.2", "203.0.113.7"},
			{"OnlyProxies", "10.1.1.1:5000", "10.3.3.3", "10.3.3.3"},
			{"Garbage", "10.1.1.1:5000", "nonsense", "10.1.1.1"},
			{"IPv4InIPv6", "[::ffff:198.51.100.1]:5000", "", "198.51.100.1"},
		}
		for _, tt := range tests {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.remote
			if tt.xff != "" {
				r.Header.Set("X-Forwarded-For", tt.xff)
			}
			if got, ok := tbl.clientAddr(r); !ok || got.String() != tt.want {
				t.Errorf("%s: clientAddr(%s, X-Forwarded-For %q) = %v, want %s", tt.name, tt.remote, tt.xff, got, tt.want)
			}
		}
		// IPv6 clients count by /64; an address that is not an IP (an in-memory
		// connection) is not limited.
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = "[2001:db8:1:2:aaaa::1]:5000"
		if k, ok := tbl.key(r); !ok || k != netip.MustParseAddr("2001:db8:1:2::") {
			t.Errorf("key of %s = %v, want 2001:db8:1:2:: (its /64)", r.RemoteAddr, k)
		}
		r.RemoteAddr = "pipe"
		if _, ok := tbl.key(r); ok {
			t.Errorf("an in-memory peer (%q) is limited", r.RemoteAddr)
		}
	})

	t.Run("Eviction", func(t *testing.T) {
		t.Parallel()
		var mu sync.Mutex
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		tbl := newIPTable(IPLimits{RequestRate: 10, MaxConns: 5}, clock, testLog(t))
		req := func(addr string) *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = addr + ":1"
			return r
		}
		for i := range 100 {
			if err := tbl.request(req(fmt.Sprintf("198.51.100.%d", i))); err != nil {
				t.Fatal(err)
			}
		}
		release, err := tbl.openConn(req("192.0.2.1")) // an open connection keeps its entry
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		now = now.Add(2 * ipSweepEvery)
		mu.Unlock()
		if err := tbl.request(req("203.0.113.1")); err != nil {
			t.Fatal(err)
		}
		if n := tbl.size(); n != 2 {
			t.Fatalf("%d addresses held after the sweep, want 2 (the open connection's and the newest)", n)
		}
		release()
	})
}

// grepLines is the lines of text that contain s.
func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestCompression(t *testing.T) {
	t.Parallel()
	_, url := serveBare(t, Deps{})
	raw := &http.Client{Transport: &http.Transport{DisableCompression: true}} // bodies as sent

	_, identity := get(t, raw, url+"/static/widget.js")
	if len(identity) < 4*compressMinBody {
		t.Fatalf("widget.js is %d bytes: pick a larger file", len(identity))
	}
	decode := func(enc string, body []byte) []byte {
		t.Helper()
		var r io.Reader
		switch enc {
		case "br":
			r = brotli.NewReader(bytes.NewReader(body))
		case "gzip":
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			r = zr
		default:
			return body
		}
		out, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("decoding %s: %v", enc, err)
		}
		return out
	}
	tests := []struct {
		name, path, accept, want string
	}{
		{"Brotli", "/static/widget.js", "gzip, deflate, br", "br"},
		{"Gzip", "/static/widget.js", "gzip", "gzip"},
		{"GzipPreferred", "/static/kefu.css", "br;q=0.5, gzip", "gzip"},
		{"Star", "/agent", "*", "br"},
		{"Refused", "/static/widget.js", "br;q=0, gzip;q=0", ""},
		{"None", "/static/widget.js", "", ""},
		{"Identity", "/", "identity", ""},
		{"SmallBody", "/healthz", "br, gzip", ""},
		{"SmallJSON", "/api/nowhere", "br, gzip", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := get(t, raw, url+tt.path, "Accept-Encoding", tt.accept)
			if got := res.Header.Get("Content-Encoding"); got != tt.want {
				t.Fatalf("GET %s, Accept-Encoding %q: Content-Encoding %q, want %q", tt.path, tt.accept, got, tt.want)
			}
			if !strings.Contains(strings.Join(res.Header.Values("Vary"), ","), "Accept-Encoding") {
				t.Errorf("GET %s: Vary %q, want Accept-Encoding", tt.path, res.Header.Values("Vary"))
			}
			if tt.want != "" && res.Header.Get("Content-Length") != "" && res.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
				t.Errorf("GET %s: Content-Length %s for %d encoded bytes", tt.path, res.Header.Get("Content-Length"), len(body))
			}
			if tt.path == "/static/widget.js" {
				if got := decode(tt.want, body); !bytes.Equal(got, identity) {
					t.Fatalf("GET %s, %s: %d bytes decoded, want the %d of the file", tt.path, tt.want, len(got), len(identity))
				}
				if tt.want != "" && len(body)*2 > len(identity) {
					t.Errorf("%s: %d bytes for %d: hardly compressed", tt.want, len(body), len(identity))
				}
			}
		})
	}

	t.Run("MetricsNotEncodedTwice", func(t *testing.T) {
		res, body := get(t, raw, url+"/metrics", "Accept-Encoding", "gzip")
		if res.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(string(decode("gzip", body)), "# HELP") {
			t.Fatalf("/metrics with gzip: Content-Encoding %q and a body that does not decode once to the metrics",
				res.Header.Get("Content-Encoding"))
		}
	})

	t.Run("WebSocketDeflate", func(t *testing.T) {
		var wire atomic.Int64 // bytes the client read off the socket
		dialer := websocket.Dialer{EnableCompression: true, NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			return countingConn{c, &wire}, err
		}}
		ws, res, err := dialer.Dial(wsURL(url, "/ws/customer"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		if ext := res.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(ext, "permessage-deflate") {
			t.Fatalf("extensions %q: permessage-deflate not negotiated", ext)
		}
		if res.Header.Get("Content-Encoding") != "" {
			t.Fatalf("the upgrade carries Content-Encoding %q", res.Header.Get("Content-Encoding"))
		}
		// The error frame repeats the unknown type: 8 KB that deflate shrinks to little.
		long := strings.Repeat("很长的类型 ", 500)
		before := wire.Load()
		if err := ws.WriteJSON(map[string]any{"type": long}); err != nil {
			t.Fatal(err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, data, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		var f struct{ Type, Code, Message string }
		if err := json.Unmarshal(data, &f); err != nil || f.Type != "error" || !strings.Contains(f.Message, long) {
			t.Fatalf("frame %.200s: want an error naming the type", data)
		}
		if got := wire.Load() - before; got*4 > int64(len(data)) {
			t.Fatalf("a %d-byte frame took %d bytes on the wire: not compressed", len(data), got)
		}
		// Small frames go uncompressed, and still arrive.
		if err := ws.WriteJSON(map[string]any{"type": "ping"}); err != nil {
			t.Fatal(err)
		}
		if _, data, err := ws.ReadMessage(); err != nil || !strings.Contains(string(data), "pong") {
			t.Fatalf("ping: %s %v, want a pong", data, err)
		}
	})

	t.Run("WebSocketPlain", func(t *testing.T) {
		ws, res, err := websocket.DefaultDialer.Dial(wsURL(url, "/ws/customer"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		if ext := res.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
			t.Fatalf("extensions %q for a client that offered none", ext)
		}
	})

	t.Run("WebSocketNoDeflate", func(t *testing.T) {
		_, plain := serveBare(t, Deps{NoDeflate: true})
		ws, res, err := (&websocket.Dialer{EnableCompression: true}).Dial(wsURL(plain, "/ws/customer"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		if ext := res.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
			t.Fatalf("extensions %q with NoDeflate", ext)
		}
	})
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	readyz := func(t *testing.T, url string) (int, map[string]any) {
		t.Helper()
		res, body := get(t, http.DefaultClient, url+"/readyz")
		var out map[string]any
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("/readyz body %q: %v", body, err)
		}
		return res.StatusCode, out
	}
	check := func(out map[string]any, name string) string {
		c, _ := out["checks"].(map[string]any)
		s, _ := c[name].(string)
		return s
	}

	t.Run("DatabaseDown", func(t *testing.T) {
		t.Parallel()
		cfg, err := pgxpool.ParseConfig("host=127.0.0.1 port=1 user=kefu dbname=kefu sslmode=disable connect_timeout=1")
		if err != nil {
			t.Fatal(err)
		}
		pool, err := pgxpool.NewWithConfig(t.Context(), cfg) // connects lazily
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		_, url := serveBare(t, Deps{Pool: pool})
		code, out := readyz(t, url)
		if code != http.StatusServiceUnavailable || out["status"] != "not_ready" || check(out, "database") == "ok" {
			t.Fatalf("/readyz with the database down = %d %v, want 503 not_ready naming the database", code, out)
		}
		if res, _ := get(t, http.DefaultClient, url+"/healthz"); res.StatusCode != http.StatusOK {
			t.Fatalf("/healthz = %d with the database down: the process is alive", res.StatusCode)
		}
	})

	t.Run("Ready", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Schema(t)
		var models atomic.Bool
		s, url := serveBare(t, Deps{Pool: pool, Ready: func(context.Context) error {
			if !models.Load() {
				return fmt.Errorf("the models are loading")
			}
			return nil
		}})
		if code, out := readyz(t, url); code != http.StatusServiceUnavailable || check(out, "models") != "the models are loading" {
			t.Fatalf("/readyz before the models = %d %v, want 503 naming the models", code, out)
		}
		models.Store(true)
		if code, out := readyz(t, url); code != http.StatusOK || out["status"] != "ready" || check(out, "database") != "ok" {
			t.Fatalf("/readyz = %d %v, want 200 ready", code, out)
		}
		s.Shutdown()
		if code, out := readyz(t, url); code != http.StatusServiceUnavailable || check(out, "shutdown") == "" {
			t.Fatalf("/readyz after Shutdown = %d %v, want 503 shutting down", code, out)
		}
	})
}

func TestOpsMetrics(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t)
	s, url := serveBare(t, Deps{Pool: pool, Broker: NewPGBroker(pool, testLog(t))})
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(url, "/ws/customer"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteJSON(map[string]any{"type": "ping"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ws.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	s.Metrics.Observe("nlu", 3*time.Millisecond)
	s.Metrics.Observe("retrieval", 8*time.Millisecond)
	s.Metrics.Observe("turn", 60*time.Millisecond)
	m := scrape(t, url)
	for _, line := range []string{
		`kefu_ws_connections{kind="customer"} 1`,
		`kefu_ws_connections{kind="agent"} 0`,
		`kefu_ws_frames_received_total{kind="customer"} 1`,
		`kefu_ws_frames_sent_total{kind="customer"} 1`,
		`kefu_ws_closes_total{kind="customer",reason="slow"} 0`,
		`kefu_ws_send_queue_frames 0`,
		`kefu_ws_send_queue_max_frames 0`,
		`kefu_ws_customers 0`,
		`kefu_turn_seconds_count 1`,
		`kefu_turn_seconds_bucket{le="0.075"} 1`,
		`kefu_dialog_stage_seconds_count{stage="nlu"} 1`,
		`kefu_dialog_stage_seconds_count{stage="retrieval"} 1`,
		`kefu_broker_outbox_frames 0`,
		`kefu_broker_dropped_frames_total 0`,
		`kefu_ip_limited_total{limit="request_rate"} 0`,
		`kefu_db_pool_max_connections 8`,
	} {
		if !strings.Contains(m, "\n"+line+"\n") {
			t.Errorf("metrics lack %s", line)
		}
	}
	for _, name := range []string{"kefu_db_pool_connections", "kefu_db_pool_idle_connections", "kefu_db_pool_acquired_connections",
		"kefu_db_pool_acquires_total", "kefu_db_pool_acquire_wait_seconds_total", "kefu_db_pool_empty_acquires_total",
		"kefu_db_pool_canceled_acquires_total", "kefu_db_pool_constructing_connections", "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(m, "\n"+name+" ") {
			t.Errorf("metrics lack %s", name)
		}
	}
	ws.Close()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(scrape(t, url), "\nkefu_ws_connections{kind=\"customer\"} 0\n") {
		if time.Now().After(deadline) {
			t.Fatal("kefu_ws_connections did not come down after the client left")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// heldNLU blocks each Understand until release is closed, after telling entered.
type heldNLU struct {
	entered chan struct{}
	release chan struct{}
}

func (h heldNLU) Understand(ctx context.Context, text string) (nlu.Result, error) {
	h.entered <- struct{}{}
	<-h.release
	return smallTalkNLU{}.Understand(ctx, text)
}

// TestShutdownDrains: Shutdown tells every client to reconnect (4001) and refuses new
// connections; Drain waits for the turn in progress, which is stored.
func TestShutdownDrains(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t, retrieval.Migrations(), handoff.Migrations(), dialog.Migrations())
	log := testLog(t)
	q := handoff.NewQueue(pool, log)
	held := heldNLU{entered: make(chan struct{}, 1), release: make(chan struct{})}
	engine := dialog.NewEngine(pool, held, noKnowledge{}, q, dialog.Config{}, log)
	s, url := serveBare(t, Deps{Pool: pool, Engine: engine, Queue: q})

	code, out := call(t, url, "/api/sessions", "", `{"channel":"web"}`)
	if code != http.StatusCreated {
		t.Fatalf("POST /api/sessions = %d %s", code, out)
	}
	id, token := created(t, string(out))
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(url, "/ws/customer"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := ws.WriteJSON(map[string]any{"type": "hello", "session_id": id, "token": token}); err != nil {
		t.Fatal(err)
	}
	for {
		var f map[string]any
		if err := ws.ReadJSON(&f); err != nil {
			t.Fatal(err)
		}
		if f["type"] == "welcome" {
			break
		}
	}
	if err := ws.WriteJSON(map[string]any{"type": "message", "client_id": "c1", "text": "hello there"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the turn did not start")
	}

	s.Shutdown()
	var closeErr error
	for closeErr == nil {
		_, _, closeErr = ws.ReadMessage()
	}
	if !websocket.IsCloseError(closeErr, closeShutdown.code) {
		t.Fatalf("the client got %v, want close %d (reconnect)", closeErr, closeShutdown.code)
	}
	late, _, err := websocket.DefaultDialer.Dial(wsURL(url, "/ws/customer"), nil)
	if err == nil {
		_ = late.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err = late.ReadMessage()
		late.Close()
		if !websocket.IsCloseError(err, closeShutdown.code) {
			t.Fatalf("a connection after Shutdown got %v, want close %d", err, closeShutdown.code)
		}
	}

	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		drained <- s.Drain(ctx)
	}()
	select {
	case err := <-drained:
		t.Fatalf("Drain returned (%v) while a turn was in progress", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(held.release)
	select {
	case err := <-drained:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Drain did not return after the turn ended")
	}
	msgs, err := engine.Messages(t.Context(), id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var stored, replied bool
	for _, m := range msgs {
		stored = stored || (m.Role == dialog.RoleCustomer && m.ClientID == "c1")
		replied = replied || (stored && m.Role == dialog.RoleBot)
	}
	if !stored || !replied {
		t.Fatalf("after the drain the transcript is %+v, want the customer's message and the bot's reply", msgs)
	}
}

func TestFlightDrainDeadline(t *testing.T) {
	t.Parallel()
	var f flight
	if !f.enter() {
		t.Fatal("enter refused before draining")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := f.drain(ctx); err == nil || !strings.Contains(err.Error(), "1 frames") {
		t.Fatalf("drain with a frame in progress = %v, want a deadline error counting it", err)
	}
	if f.enter() {
		t.Fatal("enter accepted while draining")
	}
	f.leave()
	if err := f.drain(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestFramePanicIsAnError: a handler that panics answers its frame with an internal error;
// the connection and the process live on.
func TestFramePanicIsAnError(t *testing.T) {
	t.Parallel()
	_, url := serveBare(t, Deps{}) // no engine: a hello panics
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(url, "/ws/customer"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for _, f := range []map[string]any{{"type": "hello", "session_id": 1, "token": "x"}, {"type": "ping"}} {
		if err := ws.WriteJSON(f); err != nil {
			t.Fatal(err)
		}
	}
	var first, second map[string]any
	if err := ws.ReadJSON(&first); err != nil {
		t.Fatal(err)
	}
	if err := ws.ReadJSON(&second); err != nil {
		t.Fatal(err)
	}
	if first["type"] != "error" || first["code"] != "internal" || second["type"] != "pong" {
		t.Fatalf("frames %v then %v, want an internal error then a pong", first, second)
	}
}
