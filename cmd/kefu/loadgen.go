package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kefu-dev/kefu/internal/memnet"
	"github.com/kefu-dev/kefu/retrieval"
)

// loadUtterances are what load-test customers say: knowledge questions, orders looked up by
// number, greetings and thanks, in Chinese and English, as a shop's chat sees them. Each is
// answered by the demo shop's bot without bringing a person in (checked against the demo
// knowledge base and flows); -utterances replaces them.
var loadUtterances = []string{
	// greetings, thanks, goodbyes
	"你好", "您好，请问在吗", "客服在吗", "早上好", "hi", "hello there", "good morning", "hi, quick question",
	"谢谢", "谢谢你，帮大忙了", "好的，谢谢", "thanks", "thank you so much", "thanks, that helps", "再见", "bye",
	// shipping
	"下单后多久发货，几天能到？", "多久能发货", "快递几天到", "用什么快递", "How long does shipping take after I order?",
	"how many days until delivery", "which courier do you use", "do you ship on weekends",
	"运费怎么算，满多少包邮？", "包邮吗", "运费多少钱", "How much is shipping and when is it free?", "is shipping free",
	"shipping cost", "能寄到国外或者港澳台吗？", "能发美国吗", "Do you ship outside mainland China?", "do you ship to hong kong",
	// returns, refunds, exchanges
	"怎么退货，支持七天无理由退货吗？", "退货运费谁出", "How do I return an item?", "who pays return shipping",
	"what's the return policy", "退款多久到账？", "钱什么时候退回来", "How long does a refund take?",
	"when will i get my money back", "尺码不合适可以换货吗？", "Can I exchange an item for another size?",
	"买完之后降价了可以退差价吗？", "价格保护", "The price dropped after I bought it. Can I get the difference back?",
	// payment, invoices, coupons, points
	"支持哪些支付方式？", "可以用信用卡吗", "能用花呗吗", "Which payment methods do you accept?", "can i pay by credit card",
	"do you take paypal", "付款失败或者扣款了订单却显示未支付怎么办？",
	"My payment failed or I was charged but the order shows unpaid. What should I do?", "怎么开发票？", "电子发票在哪下载",
	"How do I get an invoice?", "i need an invoice for my order", "优惠券怎么用？", "优惠码在哪输入", "How do I use a coupon?",
	"where to enter promo code", "会员积分怎么获得和使用？", "积分怎么用", "How do I earn and use membership points?",
	"redeem points",
	// orders
	"下单后可以修改收货地址吗？", "Can I change the delivery address after ordering?", "怎么取消订单？",
	"How do I cancel an order?", "怎么查订单物流？", "How can I track my order?", "where is my order SO20261127001?",
	"我的订单 SO20261127002 到哪了", "订单 SO20261120003 到哪了", "check order SO20261120003 please",
	"order SO20261127001 status please", "下单后可以修改商品的数量、尺码或颜色吗？",
	"Can I change the size, colour or quantity after ordering?", "预售商品什么时候发货，定金能退吗？", "When do pre-order items ship?",
	// account, hours, products
	"忘记密码或登录不了怎么办？", "收不到验证码", "I forgot my password, what do I do?", "no verification code",
	"客服几点上班", "周末有客服吗", "are you open on weekends", "what are your business hours",
	"商品保修多久，怎么保修？", "保修期多长", "How long is the warranty and how do I claim it?", "warranty period",
	"尺码表在哪里看", "身高170体重65穿什么码", "How do I choose the right size?", "size chart",
	"可以提供礼品包装和贺卡吗？", "Can you gift-wrap my order and add a card?", "is gift wrapping available", "这款跑鞋有现货吗",
}

// LoadReport is what kefu loadgen prints at the end.
type LoadReport struct {
	Mode        string           `json:"mode"` // sockets, in-process or bare
	Targets     []string         `json:"targets,omitempty"`
	Procs       int              `json:"procs"`
	Sources     int              `json:"sources,omitempty"`
	Interrupted bool             `json:"interrupted,omitempty"`
	Connections LoadConnections  `json:"connections"`
	Messages    LoadMessages     `json:"messages"`
	ReplyMs     LoadLatency      `json:"reply_latency_ms"`
	AgentMs     *LoadLatency     `json:"agent_reply_latency_ms,omitempty"` // customer's message → the agent's reply, across instances
	Agents      *LoadAgents      `json:"agents,omitempty"`
	Errors      map[string]int64 `json:"errors"`
	Server      LoadServer       `json:"server"`
	Generator   *LoadGenerator   `json:"generator,omitempty"`
}

// LoadConnections counts the connections: asked for, opened (welcomed), failed to open,
// still open at the end, and the time to open them.
type LoadConnections struct {
	Target      int         `json:"target"`
	Established int64       `json:"established"`
	Failed      int64       `json:"failed"`
	OpenAtEnd   int64       `json:"open_at_end"`
	Seconds     float64     `json:"seconds_to_open"`
	OpenMs      LoadLatency `json:"open_latency_ms"` // session, dial, hello → welcome
}

// LoadMessages counts the messages: skipped ones found every active connection waiting for a
// reply (the server fell behind) or were overdue by more than a second (the generator did).
type LoadMessages struct {
	Active     int     `json:"active_connections"`
	Sent       int64   `json:"sent"`
	Replied    int64   `json:"replied"`
	Unanswered int64   `json:"unanswered"`
	Skipped    int64   `json:"skipped"`
	ToAgents   int64   `json:"to_agents,omitempty"`     // of sent: to a person (-agents), answered by them
	AgentReply int64   `json:"agent_replied,omitempty"` // of replied: by a person
	WarmSent   int64   `json:"warmup_sent,omitempty"`   // sent and replied during -warmup: in no other figure
	WarmReply  int64   `json:"warmup_replied,omitempty"`
	Rate       float64 `json:"rate_target"`
	Achieved   float64 `json:"rate_achieved"`
	Seconds    float64 `json:"seconds"`
}

// LoadLatency is a latency distribution in milliseconds (within 1%; max exact).
type LoadLatency struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99.9"`
	Max   float64 `json:"max"`
}

func latencyOfHist(h histSnapshot) LoadLatency {
	return LoadLatency{Count: h.count(), P50: h.quantile(0.5), P90: h.quantile(0.9), P99: h.quantile(0.99), P999: h.quantile(0.999), Max: h.quantile(1)}
}

// LoadServer is the server's memory and goroutines before the connections, once they are
// open and idle, and at the end (still open, after the messages), summed over the targets;
// per connection is (idle − before) / connections established, and at the end (end −
// before) / connections. In-process, the process is the server and the generator together.
type LoadServer struct {
	Before                  LoadSample   `json:"before"`
	Idle                    LoadSample   `json:"idle"`
	End                     LoadSample   `json:"end"`
	RSSPerConnection        float64      `json:"rss_per_connection_bytes"`
	EndRSSPerConnection     float64      `json:"end_rss_per_connection_bytes"`
	GoroutinesPerConnection float64      `json:"goroutines_per_connection"`
	PerTarget               []LoadSample `json:"per_target_idle,omitempty"`
	Note                    string       `json:"note,omitempty"`
}

// LoadSample is one reading of a server's metrics.
type LoadSample struct {
	URL        string `json:"url,omitempty"`
	RSS        int64  `json:"rss_bytes"`
	Goroutines int64  `json:"goroutines"`
	HeapInuse  int64  `json:"heap_inuse_bytes,omitempty"`  // in-process only: the heap's spans in use…
	HeapLive   int64  `json:"heap_live_bytes,omitempty"`   // …what the last GC found live in them…
	StackInuse int64  `json:"stack_inuse_bytes,omitempty"` // …and the goroutines' stacks
	Error      string `json:"error,omitempty"`
}

// LoadGenerator is the load generator's own processes at the end, connections still open;
// per connection is from the workers' RSS before they opened any.
type LoadGenerator struct {
	RSS              int64   `json:"rss_bytes"`
	RSSPerConnection float64 `json:"rss_per_connection_bytes,omitempty"`
	Goroutines       int     `json:"goroutines"`
}

// loadgenCmd is `kefu loadgen`: it opens customer WebSocket connections to one or more
// servers (or, with -in-process, to a server it runs itself over in-memory connections),
// keeps them open, has a fraction of them send messages at a total rate, and measures the
// bot's reply latency and the server's memory and goroutines per connection.
//
// The connections are spread over source addresses 127.0.0.1…127.0.0.k, so that each has
// the ephemeral port range to itself, and over worker processes (the binary re-executed),
// so that no process holds more than its open-file limit allows. The run: open (at -ramp
// per second), stay idle for -hold, read the servers' metrics, send for -duration, read
// them again, close. Progress goes to stderr every 2 s, the report (LoadReport) to stdout.
func loadgenCmd(ctx context.Context, args []string, log *slog.Logger) error {
	raiseFileLimit(log)
	if len(args) == 2 && args[0] == "-worker" {
		return loadWorkerMain(ctx, args[1])
	}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	n := fs.Int("connections", 1000, "customer connections to open")
	targets := fs.String("targets", "http://127.0.0.1:8080", "servers' base URLs, separated by commas; connections go round-robin")
	sources := fs.Int("sources", 0, "source addresses 127.0.0.1…127.0.0.N to connect from (0: one per 10,000 connections)")
	procs := fs.Int("procs", 0, "worker processes holding the connections (0: one per 15,000 connections; 1 holds them in this process)")
	active := fs.Float64("active", 0.05, "fraction of the connections that send messages")
	rate := fs.Float64("rate", 500, "messages per second in total, over the active connections")
	pace := fs.String("pace", "poisson", "how messages are spaced: poisson (random arrivals) or even")
	ramp := fs.Float64("ramp", 1000, "connections opened per second in total (0: as fast as -concurrency allows)")
	conc := fs.Int("concurrency", 128, "connections being opened at once, in total")
	hold := fs.Duration("hold", 10*time.Second, "how long the connections stay idle once open, before the idle reading and the messages")
	dur := fs.Duration("duration", 30*time.Second, "how long messages are sent and measured (0: none, an idle run)")
	warmup := fs.Duration("warmup", 0, "how long messages are sent before -duration, left out of the figures (a fresh server's caches and database connections warm up)")
	replyTimeout := fs.Duration("reply-timeout", 30*time.Second, "a message without a reply after this counts as unanswered")
	metrics := fs.String("metrics", "", "the servers' Prometheus endpoints, separated by commas (default: each target's /metrics; off: none)")
	inProcess := fs.Bool("in-process", false, "run the server in this process and connect to it over in-memory connections (the server flags below apply)")
	utterFile := fs.String("utterances", "", "file of customer messages, one a line (default: built-in Chinese and English ones)")
	compress := fs.Bool("compress", false, "offer permessage-deflate, as browsers do (the server compresses what it sends)")
	bare := fs.String("bare", "", "open plain WebSockets on this path (no session, no hello, no messages): for a baseline against -echo")
	echo := fs.String("echo", "", "run a bare gorilla/websocket echo server on this address, with /metrics, as the baseline to compare with")
	memProfile := fs.String("memprofile", "", "with -in-process: write a heap profile to this file when the connections are open and idle")
	agents := fs.Int("agents", 0, "agent consoles to open (accounts loadgen-agent-N@loadgen.kefu.local made in -database-url's database and added to every skill group, where they stay: for test databases); each accepts every offer, answers each customer message at once and closes what it holds at the end")
	handoffShare := fs.Float64("handoff", 0, "with -agents: fraction of the active connections that ask for a person first and then talk to their agent")
	agentChats := fs.Int("agent-chats", 10, "with -agents: conversations each agent takes at once")
	agentTargets := fs.String("agent-targets", "", "with -agents: servers the consoles connect to, separated by commas (default: -targets, from the last)")
	var cfg Config
	bindServerFlags(fs, &cfg)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *echo != "" {
		return runEchoServer(ctx, *echo, log)
	}
	if *n <= 0 {
		return errors.New("-connections must be positive")
	}
	if *pace != "poisson" && *pace != "even" {
		return fmt.Errorf("-pace %q: want poisson or even", *pace)
	}
	utterances := loadUtterances
	if *utterFile != "" {
		var err error
		if utterances, err = readUtterances(*utterFile); err != nil {
			return err
		}
	}
	o := loadRun{n: *n, active: *active, rate: *rate, poisson: *pace == "poisson", ramp: *ramp, hold: *hold, duration: *dur, warmup: *warmup,
		replyTimeout: *replyTimeout, concurrency: *conc, bare: *bare, compress: *compress, utterances: utterances, memProfile: *memProfile, log: log,
		agents: *agents, handoff: *handoffShare, agentChats: *agentChats, databaseURL: cfg.DatabaseURL}
	if o.agents < 0 || o.handoff < 0 || o.handoff > 1 || o.agentChats < 1 || o.agentChats > 100 {
		return errors.New("-agents must be ≥ 0, -handoff 0 to 1 and -agent-chats 1 to 100")
	}
	if o.handoff > 0 && o.agents == 0 {
		return errors.New("-handoff needs -agents: nobody would answer the customers who ask for a person")
	}
	if o.agents > 0 && !*inProcess && cfg.DatabaseURL == "" {
		return errors.New("-agents needs -database-url (the servers' database), where the agents' accounts are made")
	}
	o.targets = baseURLs(*targets)
	if len(o.targets) == 0 {
		return errors.New("-targets: no server given")
	}
	if o.agentTargets = baseURLs(*agentTargets); len(o.agentTargets) == 0 {
		o.agentTargets = o.targets
	}
	o.procs = *procs
	if o.procs <= 0 {
		o.procs = (o.n + 14999) / 15000
	}
	o.sources = *sources
	if o.sources <= 0 {
		o.sources = min((o.n+9999)/10000, 254)
	}
	if o.bare != "" {
		o.duration = 0
	}
	switch {
	case *inProcess:
		return printReport(o.runInProcess(ctx, cfg))
	case *metrics == "off":
	case *metrics != "":
		for u := range strings.SplitSeq(*metrics, ",") {
			o.metrics = append(o.metrics, strings.TrimSpace(u))
		}
	default:
		for _, t := range o.targets {
			o.metrics = append(o.metrics, t+"/metrics")
		}
	}
	return printReport(o.run(ctx))
}

// baseURLs splits a comma-separated list of servers' base URLs (no trailing slash).
func baseURLs(list string) []string {
	var out []string
	for t := range strings.SplitSeq(list, ",") {
		if t = strings.TrimRight(strings.TrimSpace(t), "/"); t != "" {
			out = append(out, t)
		}
	}
	return out
}

func printReport(rep LoadReport, err error) error {
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// bindServerFlags adds serve's flags to fs for -in-process, except those whose names
// loadgen's own flags use (those stay settable by their environment variables).
func bindServerFlags(fs *flag.FlagSet, cfg *Config) {
	sfs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfg.bindFlags(sfs)
	if f := sfs.Lookup("addr"); f != nil { // its TCP listener serves flows' webhooks only
		cfg.Addr, f.DefValue = "127.0.0.1:0", "127.0.0.1:0"
	}
	if f := sfs.Lookup("admin-addr"); f != nil { // not the port of a server running beside it
		cfg.AdminAddr, f.DefValue = "", ""
	}
	sfs.VisitAll(func(f *flag.Flag) {
		if fs.Lookup(f.Name) == nil {
			fs.Var(f.Value, f.Name, "in-process server: "+f.Usage)
		}
	})
}

func readUtterances(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has no messages", path)
	}
	return out, nil
}

// raiseFileLimit raises the soft limit on open files to the hard one: each connection is one.
func raiseFileLimit(log *slog.Logger) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil || l.Cur >= l.Max {
		return
	}
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		log.Warn("could not raise the open-file limit", "limit", l.Max, "err", err)
	}
}

// loadRun is one kefu loadgen run.
type loadRun struct {
	n                  int
	targets            []string
	metrics            []string
	sources, procs     int
	active, rate, ramp float64
	poisson            bool
	hold, duration     time.Duration
	warmup             time.Duration
	replyTimeout       time.Duration
	concurrency        int
	bare               string
	compress           bool
	utterances         []string
	memProfile         string
	log                *slog.Logger
	agents, agentChats int
	handoff            float64
	agentTargets       []string
	databaseURL        string // where the agents' accounts are made (sockets mode)

	childEnv []string  // extra environment for worker processes (tests)
	out      io.Writer // the progress lines; nil: stderr
	sample   func() []LoadSample
	dialer   loadDialer // in-process: the workers share the memory dialer
	// openDesk opens the agents' consoles; nil: openSocketDesk.
	openDesk func(ctx context.Context) (*loadDesk, error)
}

// specs splits the run between its workers.
func (o *loadRun) specs() []loadSpec {
	var out []loadSpec
	first := 0
	for i := range o.procs {
		conns := o.n / o.procs
		if i < o.n%o.procs {
			conns++
		}
		share := float64(conns) / float64(o.n)
		out = append(out, loadSpec{Worker: i, Conns: conns, First: first, Targets: o.targets, Sources: o.sources,
			Active: o.active, Handoff: o.handoff, Agents: o.agents > 0, Rate: o.rate * share, Poisson: o.poisson, Ramp: o.ramp * share,
			Concurrency: max(1, int(math.Round(float64(o.concurrency)*share))), ReplyTimeout: o.replyTimeout,
			Duration: o.duration, Warmup: o.warmup, Bare: o.bare, Compress: o.compress, Utterances: o.utterances})
		first += conns
	}
	return out
}

// loadWorkerRef is how the command talks to a worker: commands in, snapshots out (on the
// run's updates channel).
type loadWorkerRef struct {
	cmd  func(string)
	wait func() error
}

// run drives the workers through the phases and returns the report.
func (o *loadRun) run(ctx context.Context) (LoadReport, error) {
	if o.sample == nil {
		o.sample = o.scrapeAll
	}
	rep := LoadReport{Mode: "sockets", Targets: o.targets, Procs: o.procs, Sources: o.sources, Errors: map[string]int64{}}
	if o.bare != "" {
		rep.Mode = "bare"
	}
	if o.dialer != nil {
		rep.Mode, rep.Targets, rep.Sources = "in-process", nil, o.sources
	}
	var desk *loadDesk
	if o.agents > 0 {
		open := o.openDesk
		if open == nil {
			open = o.openSocketDesk
		}
		var err error
		if desk, err = open(ctx); err != nil {
			return LoadReport{}, fmt.Errorf("agents: %w", err)
		}
		o.log.Info("agents online", "agents", desk.online.Load(), "of", o.agents)
	}
	before := o.sample()
	updates := make(chan loadStats, 64)
	var workers []loadWorkerRef
	for _, spec := range o.specs() {
		ref, err := o.startWorker(ctx, spec, updates)
		if err != nil {
			for _, w := range workers {
				w.cmd("quit")
			}
			if desk != nil {
				desk.close()
			}
			return LoadReport{}, err
		}
		workers = append(workers, ref)
	}
	exited := make(chan int, len(workers))
	for i, w := range workers {
		go func() {
			if err := w.wait(); err != nil {
				o.log.Error("load worker failed", "worker", i, "err", err)
			}
			exited <- i
		}()
	}
	broadcast := func(cmd string) {
		for _, w := range workers {
			w.cmd(cmd)
		}
	}

	latest := make([]loadStats, len(workers))
	for i := range latest {
		latest[i] = loadStats{Worker: i, Phase: "opening"}
	}
	gone := make([]bool, len(workers))
	allIn := func(phases ...string) bool {
		for i, s := range latest {
			if !gone[i] && !slices.Contains(phases, s.Phase) {
				return false
			}
		}
		return true
	}
	start := time.Now()
	var opened, sendStart, sendEnd time.Time
	var idle, end []LoadSample
	phase := "opening"
	progress := time.NewTicker(2 * time.Second)
	defer progress.Stop()
	var holdTimer <-chan time.Time
	interrupted := ctx.Done()
	for phase != "done" {
		select {
		case s := <-updates:
			latest[s.Worker] = s
		case i := <-exited:
			for drained := false; !drained; { // its last lines first
				select {
				case s := <-updates:
					latest[s.Worker] = s
				default:
					drained = true
				}
			}
			if latest[i].Phase != "done" {
				rep.Errors[fmt.Sprintf("worker %d exited early", i)]++
			}
			gone[i] = true
		case <-progress.C:
			o.progress(time.Since(start), latest, phase)
			continue
		case <-holdTimer:
			holdTimer = nil
			idle = o.sample()
			if o.duration > 0 {
				phase, sendStart = "sending", time.Now()
				broadcast("go")
			} else {
				end, phase = idle, "closing"
				broadcast("quit")
			}
		case <-interrupted:
			interrupted, holdTimer = nil, nil
			rep.Interrupted = true
			if end == nil {
				end = o.sample()
			}
			phase = "closing"
			broadcast("quit")
		}
		switch {
		case phase == "opening" && allIn("opened", "done"):
			opened, phase = time.Now(), "holding"
			holdTimer = time.After(o.hold)
			o.progress(time.Since(start), latest, "opened")
		case phase == "sending" && allIn("sent", "done"):
			sendEnd = time.Now()
			end, phase = o.sample(), "closing"
			broadcast("quit")
		case phase == "closing" && allIn("done"):
			phase = "done"
		}
	}
	// Let the workers exit (their last lines are already in).
	go func() {
		for range updates {
		}
	}()
	for range len(workers) - countTrue(gone) {
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
		}
	}
	o.progress(time.Since(start), latest, "done")
	o.fill(&rep, latest, before, idle, end)
	if desk != nil {
		desk.close()
		rep.Agents = desk.report()
	}
	if !opened.IsZero() {
		rep.Connections.Seconds = round4(opened.Sub(start).Seconds())
	}
	if !sendStart.IsZero() && !sendEnd.IsZero() {
		rep.Messages.Seconds = round4(sendEnd.Sub(sendStart).Seconds() - o.warmup.Seconds())
		rep.Messages.Achieved = round4(float64(rep.Messages.Sent) / min(o.duration.Seconds(), rep.Messages.Seconds))
	}
	return rep, nil
}

// fill sums the workers' last snapshots and the server samples into rep.
func (o *loadRun) fill(rep *LoadReport, latest []loadStats, before, idle, end []LoadSample) {
	var lat, agentLat, opening histSnapshot
	rep.Connections.Target = o.n
	rep.Messages.Rate = o.rate
	if o.duration <= 0 {
		rep.Messages.Rate = 0
	}
	for _, s := range latest {
		rep.Connections.Established += s.Established
		rep.Connections.Failed += s.Failed
		rep.Messages.Sent += s.Sent
		rep.Messages.Replied += s.Replied
		rep.Messages.Skipped += s.Skipped
		rep.Messages.ToAgents += s.ToAgents
		rep.Messages.AgentReply += s.AgentReplied
		agentLat.add(s.AgentLatency)
		rep.Messages.WarmSent += s.WarmSent
		rep.Messages.WarmReply += s.WarmReplied
		for k, v := range s.Errors {
			rep.Errors[k] += v
		}
		lat.add(s.Latency)
		opening.add(s.Opening)
	}
	for _, s := range latest {
		rep.Connections.OpenAtEnd += s.Held.Open
	}
	for i := range o.n {
		if (loadSpec{Active: o.active}).isActive(i) {
			rep.Messages.Active++
		}
	}
	rep.Messages.Unanswered = rep.Messages.Sent - rep.Messages.Replied
	rep.ReplyMs = latencyOfHist(lat)
	if o.agents > 0 {
		l := latencyOfHist(agentLat)
		rep.AgentMs = &l
	}
	rep.Connections.OpenMs = latencyOfHist(opening)
	sum := func(ss []LoadSample) LoadSample {
		var t LoadSample
		for _, s := range ss {
			t.RSS += s.RSS
			t.Goroutines += s.Goroutines
			t.HeapInuse += s.HeapInuse
			t.HeapLive += s.HeapLive
			t.StackInuse += s.StackInuse
			if s.Error != "" {
				t.Error = cmp.Or(t.Error, s.URL+": "+s.Error)
			}
		}
		return t
	}
	srv := &rep.Server
	srv.Before, srv.Idle, srv.End = sum(before), sum(idle), sum(end)
	if len(idle) > 1 {
		srv.PerTarget = idle
	}
	if conns := float64(rep.Connections.Established); conns > 0 && srv.Idle.RSS > 0 && srv.Before.RSS > 0 {
		srv.RSSPerConnection = math.Round(float64(srv.Idle.RSS-srv.Before.RSS) / conns)
		srv.EndRSSPerConnection = math.Round(float64(srv.End.RSS-srv.Before.RSS) / conns)
		srv.GoroutinesPerConnection = round4(float64(srv.Idle.Goroutines-srv.Before.Goroutines) / conns)
	}
	if o.dialer != nil {
		srv.Note = "in-process: the process is the server and the generator together; the generator's connections have no goroutine (the server's writes are parsed as they are made) and about 2.5 KB of heap each"
		return
	}
	rep.Generator = &LoadGenerator{}
	var base int64
	for _, s := range latest {
		rep.Generator.RSS += s.Held.RSS
		rep.Generator.Goroutines += s.Held.Goroutines
		base += s.BaseRSS
	}
	if rep.Connections.Established > 0 && rep.Generator.RSS > 0 {
		rep.Generator.RSSPerConnection = math.Round(float64(rep.Generator.RSS-base) / float64(rep.Connections.Established))
	}
}

// progress prints one line to stderr.
func (o *loadRun) progress(elapsed time.Duration, latest []loadStats, phase string) {
	var est, failed, open, sent, replied, skipped, errs, warm, toAgents int64
	var lat, agentLat histSnapshot
	var rss int64
	for _, s := range latest {
		est += s.Established
		failed += s.Failed
		open += s.Open
		sent += s.Sent
		replied += s.Replied
		skipped += s.Skipped
		warm += s.WarmSent
		for _, v := range s.Errors {
			errs += v
		}
		lat.add(s.Latency)
		agentLat.add(s.AgentLatency)
		toAgents += s.ToAgents
		rss += s.RSS
	}
	line := fmt.Sprintf("loadgen %5.0fs %-8s conns %d/%d open (%d established, %d failed) | msgs %d sent, %d replied, %d skipped | reply p50 %.1fms p99 %.1fms | errors %d",
		elapsed.Seconds(), phase, open, o.n, est, failed, sent, replied, skipped, lat.quantile(0.5), lat.quantile(0.99), errs)
	if o.agents > 0 {
		line += fmt.Sprintf(" | to agents %d, their reply p50 %.1fms p99 %.1fms", toAgents, agentLat.quantile(0.5), agentLat.quantile(0.99))
	}
	if warm > 0 {
		line += fmt.Sprintf(" | warm-up %d sent", warm)
	}
	if o.dialer != nil {
		line += fmt.Sprintf(" | process rss %s, %d goroutines", mib(selfRSS()), runtime.NumGoroutine())
	} else {
		line += " | generator rss " + mib(rss)
	}
	out := o.out
	if out == nil {
		out = os.Stderr
	}
	fmt.Fprintln(out, line)
}

func mib(b int64) string { return fmt.Sprintf("%.0fMiB", float64(b)/(1<<20)) }

// startWorker starts one worker: in this process with one process in all (or in-process),
// otherwise as a process of its own.
func (o *loadRun) startWorker(ctx context.Context, spec loadSpec, updates chan<- loadStats) (loadWorkerRef, error) {
	if o.procs == 1 || o.dialer != nil {
		dial := o.dialer
		if dial == nil {
			dial = newTCPDialer(spec)
		}
		w := newLoadWorker(spec, dial)
		cmds := make(chan string, 4)
		done := make(chan struct{})
		go func() {
			defer close(done)
			w.run(context.WithoutCancel(ctx), cmds, func(s loadStats) { updates <- s })
		}()
		return loadWorkerRef{cmd: func(c string) { cmds <- c }, wait: func() error { <-done; return nil }}, nil
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return loadWorkerRef{}, err
	}
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	cmd := exec.Command(exe, "loadgen", "-worker", string(b))
	cmd.Env = append(os.Environ(), o.childEnv...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return loadWorkerRef{}, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return loadWorkerRef{}, err
	}
	if err := cmd.Start(); err != nil {
		return loadWorkerRef{}, fmt.Errorf("starting load worker %d: %w", spec.Worker, err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var s loadStats
			if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
				o.log.Warn("load worker wrote something else than its figures", "worker", spec.Worker, "line", sc.Text())
				continue
			}
			s.Worker = spec.Worker
			updates <- s
		}
	}()
	var mu sync.Mutex
	return loadWorkerRef{
		cmd: func(c string) {
			mu.Lock()
			defer mu.Unlock()
			_, _ = io.WriteString(stdin, c+"\n")
		},
		wait: func() error {
			<-read
			return cmd.Wait()
		},
	}, nil
}

// loadWorkerMain is a worker process: its spec on the command line, commands ("go", "quit")
// on stdin, snapshots as JSON lines on stdout. It quits when stdin closes (its command is
// gone).
func loadWorkerMain(ctx context.Context, specJSON string) error {
	var spec loadSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		return fmt.Errorf("loadgen -worker: %w", err)
	}
	cmds := make(chan string)
	go func() {
		defer close(cmds)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			cmds <- strings.TrimSpace(sc.Text())
		}
	}()
	var mu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	w := newLoadWorker(spec, newTCPDialer(spec))
	w.run(ctx, cmds, func(s loadStats) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(s)
	})
	return nil
}

// scrapeAll reads every server's metrics endpoint.
func (o *loadRun) scrapeAll() []LoadSample {
	out := make([]LoadSample, len(o.metrics))
	var wg sync.WaitGroup
	for i, u := range o.metrics {
		wg.Go(func() { out[i] = scrapeProcess(u) })
	}
	wg.Wait()
	return out
}

// scrapeProcess reads process_resident_memory_bytes and go_goroutines from a Prometheus
// endpoint.
func scrapeProcess(url string) LoadSample {
	s := LoadSample{URL: url}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		s.Error = netErrorKind(err)
		return s
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.Error = "HTTP " + strconv.Itoa(resp.StatusCode)
		return s
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch name {
		case "process_resident_memory_bytes":
			s.RSS = int64(f)
		case "go_goroutines":
			s.Goroutines = int64(f)
		}
	}
	if s.RSS == 0 {
		s.Error = "no process_resident_memory_bytes"
	}
	return s
}

// runInProcess starts the server in this process (as kefu serve would, on a TCP listener
// too, which flows' webhooks call) and serves its handler on an in-memory listener as well,
// which the workers dial: the connections are the server's real connection code over
// memnet pipes, with no file per connection.
func (o *loadRun) runInProcess(ctx context.Context, cfg Config) (LoadReport, error) {
	o.procs, o.targets, o.metrics = 1, []string{"http://kefu.mem"}, nil
	m := &Main{Config: cfg, Log: o.log}
	if err := m.Run(ctx); err != nil {
		m.Close()
		return LoadReport{}, err
	}
	defer m.Close()
	ln, err := memnet.Listen("127.0.0.1:8080")
	if err != nil {
		return LoadReport{}, err
	}
	srv := &http.Server{Handler: m.http.Handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	o.dialer = newMemDialer(ln, o.concurrency, o.compress)
	o.openDesk = func(ctx context.Context) (*loadDesk, error) {
		dialer := &websocket.Dialer{HandshakeTimeout: 10 * time.Second,
			NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return ln.Dial(ctx, nil) }}
		return openLoadDesk(ctx, m.pool, o.agents, o.agentChats, []string{"http://kefu.mem"}, o.dialer.http(), dialer, o.log)
	}
	// The server loads the Chinese dictionary in the background; the baseline has it, and not
	// the start-up's garbage (loading the models, seeding).
	retrieval.WarmLexical()
	runtime.GC()
	debug.FreeOSMemory()
	samples := 0
	o.sample = func() []LoadSample {
		profile := samples == 1 && o.memProfile != "" // the idle reading
		if profile {
			runtime.GC() // the profile is as of the last collection
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(live)
		s := LoadSample{URL: "self", RSS: selfRSS(), Goroutines: int64(runtime.NumGoroutine()),
			HeapInuse: int64(ms.HeapInuse), HeapLive: int64(live[0].Value.Uint64()), StackInuse: int64(ms.StackInuse)}
		if samples++; profile {
			if err := writeHeapProfile(o.memProfile); err != nil {
				o.log.Warn("could not write the heap profile", "err", err)
			}
		}
		return []LoadSample{s}
	}
	return o.run(ctx)
}

// runEchoServer is the baseline the issue compares Kefu with: a bare gorilla/websocket echo
// server (write buffers pooled), with the Prometheus process metrics at /metrics.
func runEchoServer(ctx context.Context, addr string, log *slog.Logger) error {
	up := websocket.Upgrader{WriteBufferPool: &sync.Pool{}}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			t, b, err := c.ReadMessage()
			if err != nil {
				return
			}
			if c.WriteMessage(t, b) != nil {
				return
			}
		}
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	log.Info("echo server listening", "addr", ln.Addr().String(), "websocket", "any path", "metrics", "/metrics")
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup("heap").WriteTo(f, 0)
}

func countTrue(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}
