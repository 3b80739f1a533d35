package api

import (
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/kefu-dev/kefu"
)

// IPLimits bound what one client address may do; a zero field turns its limit off, so the
// zero IPLimits limits nothing. IPv6 clients are counted by their /64, which is what one
// subscriber usually has. What is over a limit gets 429 with Retry-After, in the API's error
// body (code rate_limited).
type IPLimits struct {
	// MaxConns caps the WebSocket connections one address holds open at once.
	MaxConns int
	// ConnRate is how many new WebSocket connections an address may open per second, with
	// bursts of ConnBurst (0: twice ConnRate, at least 1).
	ConnRate  float64
	ConnBurst int
	// RequestRate is how many HTTP requests an address may make per second (pages, the REST
	// API; not WebSocket upgrades, which ConnRate counts, nor /healthz, /readyz and
	// /metrics), with bursts of RequestBurst (0: twice RequestRate, at least 1).
	RequestRate  float64
	RequestBurst int
	// Exempt are addresses no limit applies to (cmd/kefu exempts loopback by default, where
	// the load generator runs). A peer whose address is not an IP (an in-memory connection)
	// is exempt too.
	Exempt []netip.Prefix
	// TrustedProxies are the peers whose X-Forwarded-For is believed: the client is the
	// right-most address in it that is not itself a trusted proxy. Without them the header
	// is ignored, since any client can send one.
	TrustedProxies []netip.Prefix
}

func (l IPLimits) off() bool { return l.MaxConns <= 0 && l.ConnRate <= 0 && l.RequestRate <= 0 }

// ParsePrefixes reads a comma-separated list of addresses and CIDR prefixes ("127.0.0.0/8,
// ::1, 10.1.2.3"); an address alone is a prefix of one address. Empty gives none.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q is neither an address nor a prefix (like 10.0.0.0/8)", f)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a prefix (like 10.0.0.0/8)", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func contains(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ipTable holds the limits' state per client address, under one lock. Entries nobody has
// used for idleAfter, with no connection open, are dropped every sweepEvery, during a call:
// their token buckets are full by then, so forgetting them changes nothing.
type ipTable struct {
	cfg       IPLimits
	connBurst int
	reqBurst  int
	now       func() time.Time
	log       *slog.Logger
	warned    atomic.Bool // about X-Forwarded-For from a peer not trusted

	mu    sync.Mutex
	addrs map[netip.Addr]*ipEntry
	swept time.Time
}

type ipEntry struct {
	conns     int
	conn, req *rate.Limiter // nil when that limit is off
	seen      time.Time
}

const (
	ipSweepEvery = time.Minute
	ipIdleAfter  = time.Minute
)

func burst(b int, r float64) int {
	if b > 0 {
		return b
	}
	return max(1, int(math.Ceil(2*r)))
}

func newIPTable(cfg IPLimits, now func() time.Time, log *slog.Logger) *ipTable {
	if now == nil {
		now = time.Now
	}
	return &ipTable{cfg: cfg, connBurst: burst(cfg.ConnBurst, cfg.ConnRate), reqBurst: burst(cfg.RequestBurst, cfg.RequestRate),
		now: now, log: log, addrs: map[netip.Addr]*ipEntry{}, swept: now()}
}

// clientAddr is the address r comes from (see IPLimits.TrustedProxies); ok is false when it
// is not an IP (an in-memory connection).
func (t *ipTable) clientAddr(r *http.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	addr := ap.Addr().Unmap()
	if !contains(t.cfg.TrustedProxies, addr) {
		if r.Header.Get("X-Forwarded-For") != "" && t.warned.CompareAndSwap(false, true) {
			t.log.Warn("requests carry X-Forwarded-For from a peer that is not a trusted proxy: the per-address limits count the peer (if it is your proxy, name it in -trusted-proxies)",
				"peer", addr.String())
		}
		return addr, true
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(h, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // garbage: the last trusted hop is all that is known
		}
		addr = a.Unmap()
		if !contains(t.cfg.TrustedProxies, addr) {
			break
		}
	}
	return addr, true
}

// key is the table's key for r's client: its address (IPv6: its /64); ok is false when no
// limit applies to it.
func (t *ipTable) key(r *http.Request) (netip.Addr, bool) {
	if t == nil || t.cfg.off() {
		return netip.Addr{}, false
	}
	a, ok := t.clientAddr(r)
	if !ok || contains(t.cfg.Exempt, a) {
		return netip.Addr{}, false
	}
	if a.Is6() {
		p, _ := a.Prefix(64)
		a = p.Addr()
	}
	return a, true
}

// entry returns a's entry, creating it (under mu).
func (t *ipTable) entry(a netip.Addr, now time.Time) *ipEntry {
	if now.Sub(t.swept) >= ipSweepEvery {
		for k, e := range t.addrs {
			if e.conns == 0 && now.Sub(e.seen) >= ipIdleAfter {
				delete(t.addrs, k)
			}
		}
		t.swept = now
	}
	e := t.addrs[a]
	if e == nil {
		e = &ipEntry{}
		if t.cfg.ConnRate > 0 {
			e.conn = rate.NewLimiter(rate.Limit(t.cfg.ConnRate), t.connBurst)
		}
		if t.cfg.RequestRate > 0 {
			e.req = rate.NewLimiter(rate.Limit(t.cfg.RequestRate), t.reqBurst)
		}
		t.addrs[a] = e
	}
	e.seen = now
	return e
}

// take takes a token from l, or says how long until one is there.
func take(l *rate.Limiter, now time.Time) (time.Duration, bool) {
	if l == nil {
		return 0, true
	}
	res := l.ReserveN(now, 1)
	if !res.OK() {
		return time.Minute, false
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}

// limitError is a refusal: the limit it hit, for the metrics, and when to retry.
type limitError struct {
	limit string
	retry time.Duration
	err   error
}

func (e *limitError) Error() string { return e.err.Error() }
func (e *limitError) Unwrap() error { return e.err }

// openConn admits a new WebSocket connection from r's client, or refuses it; release gives
// its slot back when it closes (call it once).
func (t *ipTable) openConn(r *http.Request) (release func(), err error) {
	a, ok := t.key(r)
	if !ok {
		return func() {}, nil
	}
	const op = "api.openConn"
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	e := t.entry(a, now)
	if t.cfg.MaxConns > 0 && e.conns >= t.cfg.MaxConns {
		return nil, &limitError{limit: "connections", retry: 10 * time.Second,
			err: kefu.Errorf(op, kefu.RateLimited, "too many connections from your address (at most %d at once): close one or retry later", t.cfg.MaxConns)}
	}
	if d, ok := take(e.conn, now); !ok {
		return nil, &limitError{limit: "connection_rate", retry: d,
			err: kefu.Errorf(op, kefu.RateLimited, "too many new connections from your address: retry in %s", retryText(d))}
	}
	e.conns++
	return func() {
		t.mu.Lock()
		e.conns--
		e.seen = t.now()
		t.mu.Unlock()
	}, nil
}

// request admits an HTTP request from r's client, or refuses it.
func (t *ipTable) request(r *http.Request) error {
	a, ok := t.key(r)
	if !ok || t.cfg.RequestRate <= 0 {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if d, ok := take(t.entry(a, now).req, now); !ok {
		return &limitError{limit: "request_rate", retry: d,
			err: kefu.Errorf("api.request", kefu.RateLimited, "too many requests from your address: retry in %s", retryText(d))}
	}
	return nil
}

// size is the number of addresses the table holds.
func (t *ipTable) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.addrs)
}

// retrySeconds is d as Retry-After says it: whole seconds, at least 1.
func retrySeconds(d time.Duration) int { return max(1, int(math.Ceil(d.Seconds()))) }

func retryText(d time.Duration) string { return strconv.Itoa(retrySeconds(d)) + " s" }

// refuse answers a request a limit refused: 429, Retry-After, and the API's error body.
func (s *Server) refuse(c *gin.Context, err error) {
	if le, ok := err.(*limitError); ok {
		c.Header("Retry-After", strconv.Itoa(retrySeconds(le.retry)))
		s.Metrics.Limited(le.limit)
	}
	s.fail(c, err)
}

// unlimited are the routes no request rate applies to: probes and scrapes.
var unlimited = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// limitRequests applies IPLimits.RequestRate to every request but the probes and those to
// the WebSocket endpoints, which upgrade counts against the connection limits.
func (s *Server) limitRequests() gin.HandlerFunc {
	return func(c *gin.Context) {
		if p := c.Request.URL.Path; unlimited[p] || strings.HasPrefix(p, "/ws/") {
			c.Next()
			return
		}
		if err := s.ips.request(c.Request); err != nil {
			s.refuse(c, err)
			return
		}
		c.Next()
	}
}
