package api

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kefu-dev/kefu"
	"github.com/kefu-dev/kefu/dialog"
	"github.com/kefu-dev/kefu/handoff"
	"github.com/kefu-dev/kefu/retrieval"
)

//go:embed web
var webFS embed.FS

// Deps is what the server needs.
type Deps struct {
	Pool   *pgxpool.Pool
	Engine *dialog.Engine
	Queue  *handoff.Queue
	Agents *handoff.Agents
	Desk   *handoff.Desk
	KB     *retrieval.Store
	Broker Broker // nil: an in-process Hub
	Log    *slog.Logger
	// Metrics are served at /metrics; nil: New makes them, in a registry of their own.
	Metrics *Metrics
	// DemoShop, when set, is served under /demo/ (the demo order service the demo flows call).
	DemoShop http.Handler
	// Limits bound what one client address may do (the zero value: nothing).
	Limits IPLimits
	// NoDeflate turns permessage-deflate off. With it on, a client that compresses its
	// frames costs about 4 KB more while idle: gorilla sets up the inflater on the read
	// loop's own stack, which then stays grown.
	NoDeflate bool
	// Ready, when set, is asked by /readyz besides the database: nil when the process can
	// serve (its models loaded), else why not.
	Ready func(context.Context) error
}

// Server serves the REST API, the WebSocket endpoints and the web pages.
type Server struct {
	Deps
	log      *slog.Logger
	upgrader websocket.Upgrader
	ka       *keepalive // pings every connection and closes the silent ones
	turnWait time.Duration
	// waitRefresh is how often a waiting customer's connection is told their place again.
	waitRefresh time.Duration
	waiters     map[*waiter]int64 // customers' connections that said hello (under mu)
	refresher   sync.Once

	ips    *ipTable
	flight flight // frames being handled, which Drain waits for

	mu       sync.Mutex
	conns    map[*conn]struct{}
	presence map[int64]int // open console connections per agent
	closing  bool
}

// New returns a server.
func New(d Deps) *Server {
	if d.Broker == nil {
		d.Broker = NewHub()
	}
	if d.Metrics == nil {
		d.Metrics = NewMetrics(d.Queue, d.Log)
	}
	s := &Server{Deps: d, log: d.Log.With("component", "api"), turnWait: 30 * time.Second, waitRefresh: 15 * time.Second, waiters: map[*waiter]int64{},
		conns: map[*conn]struct{}{}, presence: map[int64]int{}, ips: newIPTable(d.Limits, nil, d.Log.With("component", "api"))}
	s.ka = newKeepalive(pingEvery, pongWait)
	s.upgrader = websocket.Upgrader{
		// An idle connection keeps its read buffer; a write buffer is taken from the pool for
		// each frame written and given back after. permessage-deflate is used when the client
		// offers it (unless NoDeflate): gorilla pools its compressors too and keeps no context
		// between frames, so the only idle cost is the read loop's grown stack (see NoDeflate).
		ReadBufferSize: readBuffer, WriteBufferSize: writeBuffer, WriteBufferPool: &sync.Pool{},
		EnableCompression: !d.NoDeflate,
		// The widget may be embedded on the shop's own site: the session token, not a cookie,
		// is what authorises a connection, so any origin may connect.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	if err := d.Metrics.reg.Register(newServerCollector(s)); err != nil {
		s.log.Warn("server metrics not registered: the registry has another server's", "err", err)
	}
	return s
}

// Handler is the HTTP handler with every route.
func (s *Server) Handler() http.Handler {
	r := gin.New()
	r.Use(gin.Recovery(), s.logRequests(), s.limitRequests(), compress())
	r.MaxMultipartMemory = 1 << 20
	r.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
	r.GET("/readyz", s.ready)

	api := r.Group("/api", limitBody(64<<10))
	api.POST("/sessions", s.createSession)
	api.GET("/sessions/:id/messages", s.customerMessages)
	api.POST("/sessions/:id/feedback", s.customerFeedback)
	s.customerRoutes(api)
	api.POST("/login", s.agentLogin)
	api.POST("/agent/login", s.agentLogin)
	api.GET("/agent/me", s.agentAuth, func(c *gin.Context) { c.JSON(http.StatusOK, c.MustGet("agent")) })
	api.GET("/agent/sessions/:id/messages", s.agentAuth, s.requireRole(handoff.RoleAgent, handoff.RoleSupervisor), s.agentMessages)

	s.editorRoutes(r)
	s.deskRoutes(r)
	s.supervisorRoutes(r)

	r.GET("/ws/customer", s.customerWS)
	r.GET("/ws/agent", s.agentWS)

	web, _ := fs.Sub(webFS, "web")
	r.GET("/", func(c *gin.Context) { c.FileFromFS("/", http.FS(web)) })
	r.GET("/agent", func(c *gin.Context) { c.FileFromFS("agent.html", http.FS(web)) })
	r.GET("/editor", func(c *gin.Context) { c.FileFromFS("editor.html", http.FS(web)) })
	r.GET("/supervisor", func(c *gin.Context) { c.FileFromFS("supervisor.html", http.FS(web)) })
	r.GET("/static/*file", func(c *gin.Context) { c.FileFromFS(c.Param("file"), http.FS(web)) })
	if s.DemoShop != nil {
		r.Any("/demo/*path", gin.WrapH(s.DemoShop))
	}
	r.NoRoute(func(c *gin.Context) { s.fail(c, kefu.Errorf("api", kefu.NotFound, "no such route")) })
	return r
}

func limitBody(n int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, n)
		c.Next()
	}
}

// bindJSON decodes the request body into v with clear errors for bad and oversized bodies.
func bindJSON(c *gin.Context, v any) error {
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return kefu.Errorf("api.bindJSON", kefu.TooLarge, "the body is larger than %d bytes", tooBig.Limit)
		}
		return kefu.Errorf("api.bindJSON", kefu.Invalid, "the body is not valid JSON for this route: %s", jsonProblem(err))
	}
	return nil
}

func jsonProblem(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "json: "); i >= 0 {
		msg = msg[i+6:]
	}
	return msg
}

// ready is GET /readyz: 200 {"status":"ready","checks":{…}} when this instance can serve
// customers (the database answers within 2 s, the models are loaded, it is not shutting
// down), else 503 {"status":"not_ready","checks":{…}} with what failed, so that a load
// balancer sends nobody here. GET /healthz only says the process is alive.
func (s *Server) ready(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	checks := gin.H{}
	ok := true
	check := func(name string, err error) {
		if err != nil {
			checks[name], ok = err.Error(), false
			return
		}
		checks[name] = "ok"
	}
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		check("shutdown", errors.New("shutting down"))
	}
	if s.Pool == nil {
		check("database", errors.New("no database"))
	} else if err := s.Pool.Ping(ctx); err != nil {
		s.log.WarnContext(ctx, "readiness: the database does not answer", "err", err)
		check("database", errors.New("the database does not answer"))
	} else {
		check("database", nil)
	}
	if s.Ready != nil {
		check("models", s.Ready(ctx))
	}
	if !ok {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "not_ready", "checks": checks})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready", "checks": checks})
}

func pathID(c *gin.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, kefu.Errorf("api", kefu.Invalid, "the id must be a positive integer")
	}
	return id, nil
}

func bearer(c *gin.Context) string {
	h := c.GetHeader("Authorization")
	if t, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return ""
}

// track registers a connection so Shutdown can tell it to reconnect elsewhere.
func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.relOnce.Do(func() {
		c.stats.gone()
		if c.release != nil {
			c.release()
		}
	})
}

// Shutdown closes every WebSocket connection with code 4001 (reconnect) and refuses new
// ones; /readyz says not ready from then on. Frames being handled go on: Drain waits for them.
func (s *Server) Shutdown() {
	s.mu.Lock()
	s.closing = true
	list := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		list = append(list, c)
	}
	s.mu.Unlock()
	for _, c := range list {
		c.shut(closeShutdown)
	}
}

// Drain waits until the frames being handled (turns, hellos, agents' actions) are done, or
// ctx ends; frames read after it is called are dropped (their clients send them again to the
// instance they reconnect to). Call it after Shutdown, before closing what turns use (the
// pool, the models).
func (s *Server) Drain(ctx context.Context) error { return s.flight.drain(ctx) }

// upgrade turns the request into a tracked connection that may write (conn.run), when the
// client's address is within its limits (else 429).
func (s *Server) upgrade(c *gin.Context) (*conn, bool) {
	release, err := s.ips.openConn(c.Request)
	if err != nil {
		s.refuse(c, err)
		return nil, false
	}
	ws, err := s.upgrader.Upgrade(c.Writer, c.Request, nil)
	if err != nil {
		release()
		return nil, false // the upgrader has answered with an HTTP error
	}
	cn := newConn(ws, s.ka)
	cn.stats, cn.flight, cn.log, cn.release = s.Metrics.conns(connKind(c.FullPath())), &s.flight, s.log, release
	cn.stats.opened()
	if !s.track(cn) {
		cn.shut(closeShutdown)
		s.untrack(cn)
		cn.run()
		return nil, false
	}
	cn.run()
	return cn, true
}

// connKind is the kind of connection a WebSocket route serves, as the metrics label it.
func connKind(route string) string {
	kind, _ := strings.CutPrefix(route, "/ws/")
	return kind
}

// flight counts the frames being handled, so that a shutdown can wait for the turns in
// progress. A nil *flight counts nothing.
type flight struct {
	mu       sync.Mutex
	n        int
	draining bool
	idle     chan struct{} // closed when n comes down to 0 while draining
}

// enter counts a frame in; false once draining.
func (f *flight) enter() bool {
	if f == nil {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.draining {
		return false
	}
	f.n++
	return true
}

func (f *flight) leave() {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	if f.n == 0 && f.idle != nil {
		close(f.idle)
		f.idle = nil
	}
}

func (f *flight) drain(ctx context.Context) error {
	f.mu.Lock()
	f.draining = true
	if f.n == 0 {
		f.mu.Unlock()
		return nil
	}
	if f.idle == nil {
		f.idle = make(chan struct{})
	}
	idle := f.idle
	f.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		f.mu.Lock()
		n := f.n
		f.mu.Unlock()
		return fmt.Errorf("api: %d frames still being handled: %w", n, ctx.Err())
	}
}

// helloTimer closes a connection that has not said hello in time.
func helloTimer(cn *conn, said func() bool) *time.Timer {
	return time.AfterFunc(helloWait, func() {
		if !said() {
			cn.shut(closeNoHello)
		}
	})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("api: marshal %T: %v", v, err)) // only our own frame types reach here
	}
	return b
}

func sessionTopic(id int64) string { return "session:" + strconv.FormatInt(id, 10) }
func agentTopic(id int64) string   { return "agent:" + strconv.FormatInt(id, 10) }
