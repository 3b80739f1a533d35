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
}

// Server serves the REST API, the WebSocket endpoints and the web pages.
type Server struct {
	Deps
	log      *slog.Logger
	upgrader websocket.Upgrader
	turnWait time.Duration
	// waitRefresh is how often a waiting customer's connection is told their place again.
	waitRefresh time.Duration
	waiters     map[*waiter]int64 // customers' connections that said hello (under mu)
	refresher   sync.Once

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
		conns: map[*conn]struct{}{}, presence: map[int64]int{}}
	s.upgrader = websocket.Upgrader{
		ReadBufferSize: 4096, WriteBufferSize: 4096,
		// The widget may be embedded on the shop's own site: the session token, not a cookie,
		// is what authorises a connection, so any origin may connect.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return s
}

// Handler is the HTTP handler with every route.
func (s *Server) Handler() http.Handler {
	r := gin.New()
	r.Use(gin.Recovery(), s.logRequests())
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

func (s *Server) ready(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if err := s.Pool.Ping(ctx); err != nil {
		s.fail(c, kefu.E("api.ready", kefu.Unavailable, err))
		return
	}
	c.String(http.StatusOK, "ready")
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
}

// Shutdown closes every WebSocket connection with code 4001 (reconnect).
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

// upgrade turns the request into a tracked connection with its writer running.
func (s *Server) upgrade(c *gin.Context) (*conn, bool) {
	ws, err := s.upgrader.Upgrade(c.Writer, c.Request, nil)
	if err != nil {
		return nil, false // the upgrader has answered with an HTTP error
	}
	cn := newConn(ws)
	if !s.track(cn) {
		cn.shut(closeShutdown)
		go cn.writeLoop()
		return nil, false
	}
	go cn.writeLoop()
	return cn, true
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
