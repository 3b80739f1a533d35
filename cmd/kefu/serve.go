package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kefu-dev/kefu/api"
	"github.com/kefu-dev/kefu/dialog"
	"github.com/kefu-dev/kefu/dialog/demoshop"
	"github.com/kefu-dev/kefu/handoff"
	"github.com/kefu-dev/kefu/internal/localpg"
	"github.com/kefu-dev/kefu/internal/migrate"
	"github.com/kefu-dev/kefu/nlu"
	"github.com/kefu-dev/kefu/retrieval"
)

// DemoAgentEmail is the demo agent's login.
const DemoAgentEmail = "agent@kefu.local"

// DemoEditorEmail is the demo knowledge editor's login.
const DemoEditorEmail = "editor@kefu.local"

// DemoSupervisorEmail is the demo supervisor's login.
const DemoSupervisorEmail = "supervisor@kefu.local"

// sources are the migrations of every part, in order.
func sources() []migrate.Source {
	return []migrate.Source{retrieval.Migrations(), handoff.Migrations(), dialog.Migrations()}
}

// Main is a running Kefu: built from a Config by Run, stopped by Close. Tests use it on
// 127.0.0.1:0 as the binary does on :8080.
type Main struct {
	Config Config
	Log    *slog.Logger

	URL      string // where the server listens, once Run returns
	AdminURL string // where the admin listener (pprof, /metrics) listens; empty: none
	cluster  *localpg.Cluster
	pool     *pgxpool.Pool
	model    *nlu.Classifier
	embed    retrieval.Embedder // the knowledge base's: newEmbedder's choice
	server   *api.Server
	http     *http.Server
	admin    *http.Server
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	once     sync.Once
}

func serveCmd(ctx context.Context, args []string, log *slog.Logger) error {
	m := &Main{Log: log}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	m.Config.bindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := m.Run(ctx); err != nil {
		m.Close()
		return err
	}
	fmt.Fprintf(os.Stderr, "\n  Kefu is running.\n  Customer chat:     %s/\n  Agent console:     %s/agent\n  Knowledge editor:  %s/editor\n  Supervisor:        %s/supervisor",
		m.URL, m.URL, m.URL, m.URL)
	if m.Config.Demo {
		fmt.Fprintf(os.Stderr, "\n  (demo logins: %s, %s and %s / %s)", DemoAgentEmail, DemoEditorEmail, DemoSupervisorEmail, m.Config.DemoPassword)
	}
	fmt.Fprintf(os.Stderr, "\n  Stop with Ctrl-C.\n\n")
	<-ctx.Done()
	log.Info("shutting down")
	return m.Close()
}

// Run opens the database (starting the private cluster when no URL is given), migrates,
// loads the model, seeds the demo data, and starts serving. It returns once the server
// listens.
func (m *Main) Run(ctx context.Context) error {
	gin.SetMode(gin.ReleaseMode)
	cfg := m.Config
	limits, err := cfg.limits()
	if err != nil {
		return err
	}
	pool, cluster, err := openDatabase(ctx, cfg, m.Log)
	m.pool, m.cluster = pool, cluster // Close releases whatever was opened
	if err != nil {
		return err
	}

	ort := cfg.ORTLib
	if ort == "" {
		ort = nlu.FindRuntime()
	}
	if err := nlu.InitRuntime(ort); err != nil {
		return err
	}
	modelDir, err := findDir(cfg.ModelDir)
	if err != nil {
		return err
	}
	if m.model, err = nlu.Load(modelDir); err != nil {
		return err
	}
	m.Log.Info("intent model loaded", "dir", modelDir, "version", m.model.Meta().Version, "intents", len(m.model.Labels()))
	if len(m.model.Labels()) == 0 {
		return fmt.Errorf("model %s has no intents (no classification head): kefu serve needs an intent model", modelDir)
	}
	// The language detector loads its models on first use (seconds): pay that before serving,
	// not on a customer's first message.
	t0 := time.Now()
	nlu.DetectLanguage("warm up the language models")
	m.Log.Info("language detector ready", "seconds", time.Since(t0).Round(time.Millisecond).Seconds())

	go retrieval.WarmLexical() // the Chinese dictionary takes seconds to load: not on a customer's time
	if m.embed, err = newEmbedder(ctx, cfg, m.model); err != nil {
		return err
	}
	m.Log.Info("knowledge embedder ready", "embedder", m.embed.EmbedderID())
	kb := retrieval.NewStore(pool, m.embed, cfg.KBThreshold, m.Log)
	if err := applyAnswerability(cfg, kb, m.Log); err != nil {
		return err
	}
	generator, llmURL, err := newGenerator(cfg)
	if err != nil {
		return err
	}
	if generator != nil {
		m.Log.Info("knowledge answers worded by an LLM", "url", llmURL, "model", cfg.LLMModel)
	}
	queue := handoff.NewQueue(pool, m.Log)
	metrics := api.NewMetrics(queue, m.Log)
	agents := handoff.NewAgents(pool, m.Log)
	desk := handoff.NewDesk(pool)
	if cfg.FlowsDir == "" {
		cfg.FlowsDir = "dialog/flows"
	}
	flowsDir, err := findDir(cfg.FlowsDir)
	if err != nil {
		return err
	}
	flows, err := dialog.LoadFlows(flowsDir, m.model.Labels())
	if err != nil {
		return fmt.Errorf("flows in %s:\n%w", flowsDir, err)
	}
	m.Log.Info("dialog flows loaded", "dir", flowsDir, "flows", len(flows))
	if cfg.Demo {
		if err := m.seedDemo(ctx, kb, agents, desk); err != nil {
			return err
		}
	}
	kb, reembed, err := m.knowledgeSpace(ctx, kb)
	if err != nil {
		return err
	}
	kb.SetSearch(cfg.search())

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	m.URL = "http://" + displayAddr(ln.Addr())
	self := cfg.SelfURL
	if self == "" {
		self = fmt.Sprintf("http://127.0.0.1:%d", ln.Addr().(*net.TCPAddr).Port)
	}
	secret := []byte(cfg.WebhookSecret)
	if len(secret) == 0 {
		secret = []byte(rand.Text())
	}
	vars := map[string]string{"KEFU_URL": self}
	if missing := dialog.MissingVars(flows, vars); len(missing) > 0 {
		return fmt.Errorf("flows in %s use ${%s}, which kefu does not define (it defines ${KEFU_URL})", flowsDir, strings.Join(missing, "}, ${"))
	}
	usage := retrieval.NewUsageLog(kb, 0)
	engine := dialog.NewEngine(pool, m.model, kb, queue, dialog.Config{
		EscalateAfter: cfg.EscalateAfter, ClarifyMargin: cfg.ClarifyMargin,
		AngerScore: cfg.EscalateAnger, NegativeTurns: cfg.EscalateNegative,
		VIPDirect: cfg.VIPDirect, IdentitySecret: []byte(cfg.IdentitySecret),
		ReminderAfter: cfg.ReminderAfter, CloseAfter: cfg.CloseAfter, AbandonAfter: cfg.AbandonAfter,
		Flows: flows, Webhooks: &dialog.WebhookClient{Secret: secret, Log: m.Log},
		Generator: generator, GenerateTimeout: cfg.LLMTimeout,
		Vars: vars, Usage: usage.Add,
		Related: func(key, lang string) []string { return kb.RelatedCached(key, lang, 3) },
		Observe: metrics.Observe,
	}, m.Log)
	// Frames reach connections on every instance that shares the database.
	broker, err := newBroker(ctx, cfg, pool, m.Log)
	if err != nil {
		return err
	}
	deps := api.Deps{Pool: pool, Engine: engine, Queue: queue, Agents: agents, Desk: desk, KB: kb, Broker: broker, Log: m.Log,
		Metrics: metrics, Limits: limits, NoDeflate: cfg.WSNoDeflate, Ready: m.ready}
	if cfg.Demo {
		deps.DemoShop = demoshop.New(secret, m.Log).Handler()
	}
	m.server = api.New(deps)
	m.http = &http.Server{Handler: m.server.Handler(), ReadHeaderTimeout: 10 * time.Second}

	loops, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	m.wg.Go(func() {
		if err := m.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Log.Error("http server stopped", "err", err)
		}
	})
	queue.SetOwner(engine, m.server.OnAssigned)
	queue.SetLapsed(m.server.OnLapsed)
	m.wg.Go(func() { queue.Run(loops, cfg.RouteInterval) })
	m.wg.Go(func() { m.sweep(loops, engine, cfg.SweepInterval) })
	m.wg.Go(func() { usage.Run(loops, time.Second) })
	m.wg.Go(func() { broker.Run(loops) })
	if reembed != nil {
		m.wg.Go(func() {
			if err := reembed(loops); err != nil && loops.Err() == nil {
				m.Log.Error("re-embedding the knowledge base failed: still serving from the old vectors", "err", err)
			}
		})
	}
	m.serveAdmin(metrics)
	m.Log.Info("listening", "url", m.URL)
	return nil
}

// knowledgeSpace makes sure the knowledge base can be searched by its embedder. When the
// configured embedder is new to the database and the intent model's vectors cover every
// entry (the embedder a knowledge base had before the sentence encoder), the store serves
// from those while the new vectors are made in the background (reembed, run once serving);
// otherwise the missing vectors are made now.
func (m *Main) knowledgeSpace(ctx context.Context, kb *retrieval.Store) (*retrieval.Store, func(context.Context) error, error) {
	cov, total, err := kb.Coverage(ctx)
	if err != nil {
		return nil, nil, err
	}
	want, old := m.embed.EmbedderID(), m.model.EmbedderID()
	if total == 0 || cov[want] == total || want == old || cov[old] < total {
		_, err := kb.EmbedMissing(ctx) // without vectors to serve from meanwhile: now
		return kb, nil, err
	}
	a, err := answerabilityFor(m.Config, want, m.Log)
	if err != nil {
		return nil, nil, err
	}
	serving := retrieval.NewStore(m.pool, m.model, m.Config.KBThreshold, m.Log)
	if err := applyAnswerability(m.Config, serving, m.Log); err != nil {
		return nil, nil, err
	}
	m.Log.Info("new knowledge embedder: serving from the old vectors while the new ones are made",
		"old", old, "new", want, "entries", total, "embedded", cov[want])
	return serving, func(ctx context.Context) error { return serving.Reembed(ctx, m.embed, a) }, nil
}

// sweep reminds idle customers and closes idle conversations until ctx ends.
func (m *Main) sweep(ctx context.Context, engine *dialog.Engine, every time.Duration) {
	if every <= 0 {
		every = 10 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ms, err := engine.Sweep(ctx)
		if err != nil && ctx.Err() == nil {
			m.Log.Warn("sweeping idle conversations failed", "err", err)
		}
		m.server.Deliver(ms)
	}
}

// seedDemo seeds the demo knowledge base when it is empty and, into a database without any
// account, the demo accounts and two skill groups. An account of one's own (or a second start)
// keeps the demo accounts out, so their known password never reaches a real desk.
func (m *Main) seedDemo(ctx context.Context, kb *retrieval.Store, agents *handoff.Agents, desk *handoff.Desk) error {
	seeded, err := kb.SeedDemo(ctx)
	if err != nil {
		return err
	}
	if seeded {
		n, _ := kb.Count(ctx)
		m.Log.Info("demo knowledge base seeded", "entries", n)
	}
	if n, err := agents.Count(ctx); err != nil || n > 0 {
		return err
	}
	var agentID int64
	for _, ag := range []handoff.Agent{
		{Email: DemoAgentEmail, Name: "Demo Agent 演示客服", MaxChats: 5, Roles: []string{handoff.RoleAgent}},
		{Email: DemoEditorEmail, Name: "Demo Editor 知识编辑", Roles: []string{handoff.RoleEditor}},
		{Email: DemoSupervisorEmail, Name: "Demo Supervisor 客服主管", Roles: []string{handoff.RoleSupervisor}},
	} {
		created, err := agents.Create(ctx, ag, m.Config.DemoPassword)
		if err != nil {
			return err
		}
		if ag.Email == DemoAgentEmail {
			agentID = created.ID
		}
		m.Log.Info("demo account created", "email", ag.Email, "roles", ag.Roles)
	}
	// Escalations go to the first-tier group (any language); past its SLA they overflow to the
	// second tier. The demo agent is in both.
	for _, g := range []handoff.Group{
		{Name: "技术支持 Tech L2", Tier: 2, SLASeconds: 120, Members: []int64{agentID}},
		{Name: "售前 Pre-sales L1", Tier: 1, SLASeconds: 60, Overflow: "技术支持 Tech L2", Members: []int64{agentID}},
	} {
		if _, err := desk.SaveGroup(ctx, g); err != nil {
			return err
		}
		m.Log.Info("demo skill group created", "group", g.Name)
	}
	return nil
}

// drainWait bounds how long Close waits for the turns in progress: a turn gives up after 30 s
// (an LLM's answer 20 s), and an orchestrator's grace period is often 30 s.
const drainWait = 25 * time.Second

// Close stops the server, the router, the pool and, last, the private PostgreSQL cluster. The
// server stops accepting, tells every WebSocket client to reconnect (4001: to another
// instance, or to this one when it is back), finishes the REST requests and the turns in
// progress, so that what a customer sent is stored and answered, and only then are the
// pool and the models closed. It is safe to call more than once.
func (m *Main) Close() error {
	var err error
	m.once.Do(func() {
		if m.server != nil {
			m.server.Shutdown()
		}
		ctx, cancel := context.WithTimeout(context.Background(), drainWait)
		if m.http != nil {
			err = m.http.Shutdown(ctx)
		}
		if m.server != nil {
			if e := m.server.Drain(ctx); e != nil {
				m.Log.Warn("turns still running at shutdown", "err", e)
			}
		}
		cancel()
		if m.admin != nil {
			_ = m.admin.Close()
		}
		if m.cancel != nil {
			m.cancel()
		}
		m.wg.Wait()
		if m.pool != nil {
			m.pool.Close()
		}
		if m.embed != nil {
			closeEmbedder(m.embed, m.model)
		}
		if m.model != nil {
			_ = m.model.Close()
		}
		if m.cluster != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			if e := m.cluster.Stop(ctx); e != nil && err == nil {
				err = e
			}
			cancel()
		}
	})
	return err
}

// findDir resolves a relative folder against the working folder, then against the folder
// above the binary (bin/kefu → the repository).
func findDir(dir string) (string, error) {
	if filepath.IsAbs(dir) {
		return dir, nil
	}
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(filepath.Dir(exe)), dir)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("folder %q not found (run from the repository, or give its path)", dir)
}

func displayAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if ok && (tcp.IP == nil || tcp.IP.IsUnspecified()) {
		return fmt.Sprintf("localhost:%d", tcp.Port)
	}
	return a.String()
}

// ready is what /readyz asks besides the database: the models are loaded before the server
// listens, so they are there unless Close has begun.
func (m *Main) ready(context.Context) error {
	if m.model == nil || m.embed == nil {
		return errors.New("the models are not loaded")
	}
	if !retrieval.LexicalReady() {
		return errors.New("the Chinese dictionary is still loading")
	}
	return nil
}

// serveAdmin starts the admin listener (cfg.AdminAddr): net/http/pprof under /debug/pprof/,
// /metrics and /healthz, on an address of its own (loopback by default) so that profiles are
// not served to the world. An address already taken (another instance on this machine) is
// logged and skipped: the service itself does not need it.
func (m *Main) serveAdmin(metrics *api.Metrics) {
	addr := m.Config.AdminAddr
	if addr == "" || addr == "off" {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		m.Log.Warn("admin listener not started (give each instance on a machine its own -admin-addr, or -admin-addr '' for none)",
			"addr", addr, "err", err)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // the named profiles: heap, goroutine, allocs, block, mutex…
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/metrics", metrics.Handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	m.admin = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	m.AdminURL = "http://" + displayAddr(ln.Addr())
	m.wg.Go(func() {
		if err := m.admin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Log.Error("admin listener stopped", "err", err)
		}
	})
	m.Log.Info("admin listener: pprof and metrics", "url", m.AdminURL)
}
