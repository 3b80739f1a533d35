package api

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kefu-dev/kefu/handoff"
)

// Metrics are the service's Prometheus metrics, in a registry of their own (with the Go and
// process collectors), served by Handler at GET /metrics.
//
// Two kinds live here. The desk's state and its service levels are read from the database
// at scrape time by a collector, and cached so that scrapes cannot hammer it: the live queue
// (Queue.Live) for liveTTL, the rolling 24-hour figures (Queue.Report) for reportTTL. Events
// are counted in-process by the code paths that see them, through the methods below; each
// instance counts its own, and Prometheus sums the instances.
//
// A nil *Metrics is valid and counts nothing.
type Metrics struct {
	reg  *prometheus.Registry
	now  func() time.Time // the queue's clock: assignments carry its times
	desk *deskCollector   // nil without a queue

	escalations *prometheus.CounterVec
	assignments *prometheus.CounterVec
	wait        *prometheus.HistogramVec
	notify      prometheus.Histogram
	abandons    *prometheus.CounterVec
	transfers   *prometheus.CounterVec
	closes      *prometheus.CounterVec
	csat        *prometheus.CounterVec

	// Connections, frames, turns and limits (registerOps).
	customerConns, agentConns *connStats
	turn                      prometheus.Histogram
	stages                    *prometheus.HistogramVec
	limited                   *prometheus.CounterVec
}

// How long a scrape may reuse what the database said, and how long it may wait for it.
const (
	liveTTL       = 2 * time.Second
	liveTimeout   = 2 * time.Second
	reportTTL     = 30 * time.Second
	reportTimeout = 5 * time.Second
	reportWindow  = 24 * time.Hour
)

// anyGroup labels requests routed to any agent (no skill group matched). Group names cannot
// hold parentheses, so it cannot clash with a real group.
const anyGroup = "(any)"

func groupLabel(name string) string {
	if name == "" {
		return anyGroup
	}
	return name
}

// NewMetrics returns the metrics of a server whose desk is q (nil: only the in-process
// counters and the Go and process collectors).
func NewMetrics(q *handoff.Queue, log *slog.Logger) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), now: time.Now}
	if q != nil {
		m.now = func() time.Time { return q.Now() }
	}
	m.escalations = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kefu_handoff_escalations_total",
		Help: "Conversations handed to the queue for a person, by reason."}, []string{"reason"})
	m.assignments = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kefu_handoff_assignments_total",
		Help: "Conversations offered to an agent (first offers, offers after a lapse and transfers), by skill group."}, []string{"group"})
	m.wait = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kefu_handoff_wait_seconds",
		Help:    "Time from escalation to the assignment to an agent, by skill group (transfers not counted).",
		Buckets: []float64{1, 5, 10, 15, 30, 45, 60, 90, 120, 180, 300, 600, 900, 1800, 3600}}, []string{"group"})
	m.notify = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kefu_handoff_notify_seconds",
		Help:    "Time from escalation until the assignment was pushed to the agent's console (transfers not counted).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}})
	m.abandons = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kefu_handoff_abandons_total",
		Help: "Customers who stopped waiting before a person took the conversation, by skill group."}, []string{"group"})
	m.transfers = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kefu_handoff_transfers_total",
		Help: "Conversations transferred, to an agent or to a skill group's queue."}, []string{"to"})
	m.closes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kefu_handoff_closes_total",
		Help: "Conversations a person closed, by disposition."}, []string{"disposition"})
	m.csat = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kefu_handoff_csat_ratings_total",
		Help: "Customer satisfaction ratings, by score (1-5)."}, []string{"score"})
	for score := 1; score <= 5; score++ {
		m.csat.WithLabelValues(strconv.Itoa(score)) // every score shows, at 0, from the start
	}
	m.transfers.WithLabelValues("agent")
	m.transfers.WithLabelValues("group")
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.escalations, m.assignments, m.wait, m.notify, m.abandons, m.transfers, m.closes, m.csat)
	m.registerOps()
	if q != nil {
		m.desk = newDeskCollector(q, log)
		m.reg.MustRegister(m.desk)
	}
	return m
}

// Registry is where other parts of the binary may register their own metrics.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in Prometheus's text format. A collector that fails leaves its
// metrics out (and says so in kefu_stats_up); the others are still served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, Timeout: 10 * time.Second})
}

// Escalated counts a conversation handed to the queue (Queue.Enqueue reported true).
func (m *Metrics) Escalated(reason string) {
	if m == nil {
		return
	}
	if reason == "" {
		reason = "unknown"
	}
	m.escalations.WithLabelValues(reason).Inc()
}

// Assigned counts offers to agents once their consoles have been told (the router's notify
// callback, after publishing). For offers that are not transfers it observes the wait
// (enqueue → assignment) and the notification latency (enqueue → now).
func (m *Metrics) Assigned(as []handoff.Assignment) {
	if m == nil {
		return
	}
	now := m.now()
	for _, a := range as {
		g := groupLabel(a.Group)
		m.assignments.WithLabelValues(g).Inc()
		if a.Transfers > 0 || a.Enqueued.IsZero() {
			continue
		}
		m.wait.WithLabelValues(g).Observe(max(a.Assigned.Sub(a.Enqueued).Seconds(), 0))
		m.notify.Observe(max(now.Sub(a.Enqueued).Seconds(), 0))
	}
}

// Abandoned counts a customer who stopped waiting in group's queue ("" for none).
func (m *Metrics) Abandoned(group string) {
	if m == nil {
		return
	}
	m.abandons.WithLabelValues(groupLabel(group)).Inc()
}

// Transferred counts a transfer by what Queue.Transfer returned: to an agent when it names
// one, else to a group's queue.
func (m *Metrics) Transferred(a handoff.Assignment) {
	if m == nil {
		return
	}
	to := "group"
	if a.AgentID != 0 {
		to = "agent"
	}
	m.transfers.WithLabelValues(to).Inc()
}

// Closed counts a conversation a person closed, with its (valid) disposition.
func (m *Metrics) Closed(disposition string) {
	if m == nil {
		return
	}
	if disposition == "" {
		disposition = "resolved"
	}
	m.closes.WithLabelValues(disposition).Inc()
}

// Rated counts a CSAT rating that was stored (1–5; anything else is ignored).
func (m *Metrics) Rated(score int) {
	if m == nil || score < 1 || score > 5 {
		return
	}
	m.csat.WithLabelValues(strconv.Itoa(score)).Inc()
}

// cached is a value read from the database, reused for ttl, errors included, so that a burst
// of scrapes (or a failing database) costs one read per ttl. Concurrent callers wait for the
// one read in progress.
type cached[T any] struct {
	ttl   time.Duration
	fetch func() (T, error)

	mu  sync.Mutex
	val T
	err error
	at  time.Time
}

func (c *cached[T]) get() (T, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() || time.Since(c.at) >= c.ttl {
		c.val, c.err = c.fetch()
		c.at = time.Now()
	}
	return c.val, c.err
}

// deskCollector reads the desk's state at scrape time.
type deskCollector struct {
	log    *slog.Logger
	live   *cached[handoff.Live]
	report *cached[handoff.Report]

	up                                                     *prometheus.Desc
	waiting, longest, breached, sla, online, free          *prometheus.Desc
	agents, active, freeSlots                              *prometheus.Desc
	escalated, frt, aht, avgWait, p90Wait, slaMet, abandon *prometheus.Desc
	transfer, csat, satisfied, containment, tickets        *prometheus.Desc
}

func newDeskCollector(q *handoff.Queue, log *slog.Logger) *deskCollector {
	d := &deskCollector{log: log.With("component", "metrics")}
	d.live = &cached[handoff.Live]{ttl: liveTTL, fetch: func() (handoff.Live, error) {
		ctx, cancel := context.WithTimeout(context.Background(), liveTimeout)
		defer cancel()
		return q.Live(ctx)
	}}
	d.report = &cached[handoff.Report]{ttl: reportTTL, fetch: func() (handoff.Report, error) {
		ctx, cancel := context.WithTimeout(context.Background(), reportTimeout)
		defer cancel()
		to := q.Now()
		return q.Report(ctx, to.Add(-reportWindow), to)
	}}
	g := []string{"group"}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	d.up = desc("kefu_stats_up", "Whether the last read of the desk's state (source live) or of its 24-hour report (source report) worked.", "source")
	d.waiting = desc("kefu_handoff_queue_waiting", "Conversations waiting for a person, by skill group ((any): routed to any agent).", g...)
	d.longest = desc("kefu_handoff_queue_longest_wait_seconds", "How long the longest-waiting conversation has waited, by skill group.", g...)
	d.breached = desc("kefu_handoff_queue_breached", "Conversations waiting longer than their group's SLA, by skill group.", g...)
	d.sla = desc("kefu_handoff_queue_sla_seconds", "The skill group's target wait (SLA).", g...)
	d.online = desc("kefu_handoff_group_online_agents", "Members of the skill group who are online.", g...)
	d.free = desc("kefu_handoff_group_free_slots", "Free chat slots among the group's online members.", g...)
	d.agents = desc("kefu_handoff_agents", "Agents by presence (online, away, offline).", "status")
	d.active = desc("kefu_handoff_active_chats", "Conversations agents hold now (offered or accepted).")
	d.freeSlots = desc("kefu_handoff_free_slots", "Free chat slots among all online agents.")
	d.escalated = desc("kefu_handoff_last24h_escalated", "Conversations escalated to a person in the last 24 hours.")
	d.frt = desc("kefu_handoff_last24h_first_response_seconds", "Average first response time (escalation to the agent's first reply), last 24 hours.")
	d.aht = desc("kefu_handoff_last24h_handle_seconds", "Average handling time (accepted to closed), last 24 hours.")
	d.avgWait = desc("kefu_handoff_last24h_wait_seconds", "Average wait for a person (escalation to first assignment), last 24 hours.")
	d.p90Wait = desc("kefu_handoff_last24h_wait_p90_seconds", "90th percentile of the wait for a person, last 24 hours.")
	d.slaMet = desc("kefu_handoff_last24h_sla_met_ratio", "Share of conversations assigned within their group's SLA (abandons count as missed), last 24 hours.")
	d.abandon = desc("kefu_handoff_last24h_abandon_ratio", "Share of escalations the customer abandoned, last 24 hours.")
	d.transfer = desc("kefu_handoff_last24h_transfer_ratio", "Share of assigned conversations transferred at least once, last 24 hours.")
	d.csat = desc("kefu_handoff_last24h_csat_score", "Average CSAT (1-5), last 24 hours.")
	d.satisfied = desc("kefu_handoff_last24h_csat_satisfied_ratio", "Share of CSAT ratings of 4 or 5, last 24 hours.")
	d.containment = desc("kefu_bot_last24h_containment_ratio", "Share of conversations the bot handled without a person, last 24 hours.")
	d.tickets = desc("kefu_handoff_last24h_tickets", "Messages left while nobody was online, last 24 hours.")
	return d
}

// Describe implements prometheus.Collector.
func (d *deskCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, x := range []*prometheus.Desc{d.up, d.waiting, d.longest, d.breached, d.sla, d.online, d.free, d.agents, d.active,
		d.freeSlots, d.escalated, d.frt, d.aht, d.avgWait, d.p90Wait, d.slaMet, d.abandon, d.transfer, d.csat, d.satisfied,
		d.containment, d.tickets} {
		ch <- x
	}
}

// Collect implements prometheus.Collector. A failed read is logged, reported as
// kefu_stats_up 0, and leaves that source's metrics out rather than showing stale or zero
// values.
func (d *deskCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	up := func(source string, err error) bool {
		if err != nil {
			d.log.Warn("metrics: reading the desk failed", "source", source, "err", err)
			gauge(d.up, 0, source)
			return false
		}
		gauge(d.up, 1, source)
		return true
	}

	if l, err := d.live.get(); up("live", err) {
		for _, g := range l.Groups {
			name := groupLabel(g.Name)
			gauge(d.waiting, float64(g.Waiting), name)
			gauge(d.longest, g.LongestWait, name)
			gauge(d.breached, float64(g.Breached), name)
			gauge(d.sla, float64(g.SLASeconds), name)
			gauge(d.online, float64(g.Online), name)
			gauge(d.free, float64(g.Free), name)
		}
		status := map[string]int{handoff.Online: 0, handoff.Away: 0, handoff.Offline: 0}
		active, free := 0, 0
		for _, a := range l.Agents {
			status[a.Status]++
			active += a.Active
			if a.Status == handoff.Online {
				free += max(a.Max-a.Active, 0)
			}
		}
		for s, n := range status {
			gauge(d.agents, float64(n), s)
		}
		gauge(d.active, float64(active))
		gauge(d.freeSlots, float64(free))
	}

	if r, err := d.report.get(); up("report", err) {
		t := r.Total
		gauge(d.escalated, float64(t.Escalated))
		gauge(d.tickets, float64(r.Tickets))
		// A figure without anything to measure is left out, not shown as 0.
		if t.Assigned > 0 {
			gauge(d.avgWait, t.AvgWait)
			gauge(d.p90Wait, t.P90Wait)
			gauge(d.transfer, t.TransferRate)
		}
		if t.Assigned+t.Abandoned > 0 {
			gauge(d.slaMet, t.SLAMet)
		}
		if t.AvgFRT > 0 {
			gauge(d.frt, t.AvgFRT)
		}
		if t.Closed > 0 && t.AvgHandle > 0 {
			gauge(d.aht, t.AvgHandle)
		}
		if t.Escalated > 0 {
			gauge(d.abandon, t.AbandonRate)
		}
		if t.CSATCount > 0 {
			gauge(d.csat, t.CSAT)
			gauge(d.satisfied, t.CSATShare)
		}
		if r.Sessions > 0 {
			gauge(d.containment, r.Containment)
		}
	}
}

// Latency buckets, in seconds: a turn's target is 200 ms at p99; a stage is a part of it.
var (
	turnBuckets  = []float64{.005, .01, .025, .05, .075, .1, .15, .2, .3, .5, .75, 1, 2.5, 5, 10, 30}
	stageBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .2, .5, 1, 2.5, 5, 10, 20}
)

// connStats are the counters of one kind of WebSocket connection (customer or agent). A nil
// *connStats counts nothing.
type connStats struct {
	open    prometheus.Gauge
	in, out prometheus.Counter
	closes  *prometheus.CounterVec // by reason
}

func (c *connStats) opened() {
	if c != nil {
		c.open.Inc()
	}
}

func (c *connStats) gone() {
	if c != nil {
		c.open.Dec()
	}
}

func (c *connStats) received() {
	if c != nil {
		c.in.Inc()
	}
}

func (c *connStats) sent() {
	if c != nil {
		c.out.Inc()
	}
}

func (c *connStats) closed(r closeReason) {
	if c != nil {
		c.closes.WithLabelValues(r.label()).Inc()
	}
}

// registerOps adds the operational metrics: connections, frames, turn and stage latency,
// per-address limits.
func (m *Metrics) registerOps() {
	kind := []string{"kind"}
	open := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kefu_ws_connections",
		Help: "Open WebSocket connections, by kind (customer, agent)."}, kind)
	in := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kefu_ws_frames_received_total",
		Help: "WebSocket frames received from clients, by kind of connection."}, kind)
	out := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kefu_ws_frames_sent_total",
		Help: "WebSocket frames sent to clients, by kind of connection."}, kind)
	closes := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kefu_ws_closes_total",
		Help: "WebSocket connections closed, by kind and reason (gone: the client left or the network failed; slow: its send queue was full, 4008; shutdown: 4001; no_hello: 4501)."},
		[]string{"kind", "reason"})
	m.limited = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kefu_ip_limited_total",
		Help: "Requests refused with 429 by the per-address limits, by limit (connections: too many open WebSockets; connection_rate: new WebSockets too fast; request_rate: HTTP requests too fast)."},
		[]string{"limit"})
	for _, l := range []string{"connections", "connection_rate", "request_rate"} {
		m.limited.WithLabelValues(l)
	}
	stats := func(k string) *connStats {
		c := &connStats{open: open.WithLabelValues(k), in: in.WithLabelValues(k), out: out.WithLabelValues(k),
			closes: closes.MustCurryWith(prometheus.Labels{"kind": k})}
		for _, r := range []closeReason{closeGone, closeSlow, closeShutdown} {
			c.closes.WithLabelValues(r.label()) // shown, at 0, from the start
		}
		return c
	}
	m.customerConns, m.agentConns = stats("customer"), stats("agent")
	m.turn = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kefu_turn_seconds",
		Help:    "Time from a customer's message to the bot's reply stored (dialog.Engine.Turn, committed), for turns that succeed.",
		Buckets: turnBuckets})
	m.stages = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kefu_dialog_stage_seconds",
		Help:    "Time of a part of a turn, by stage (nlu: intent and language; retrieval: the knowledge search; generate: an LLM's answer).",
		Buckets: stageBuckets}, []string{"stage"})
	for _, st := range []string{"nlu", "retrieval"} {
		m.stages.WithLabelValues(st)
	}
	m.reg.MustRegister(open, in, out, closes, m.limited, m.turn, m.stages)
}

// conns is the counters of a kind of connection ("customer", "agent"; anything else counts
// nowhere).
func (m *Metrics) conns(kind string) *connStats {
	switch {
	case m == nil:
		return nil
	case kind == "customer":
		return m.customerConns
	case kind == "agent":
		return m.agentConns
	}
	return nil
}

// Limited counts a request refused by a per-address limit ("connections",
// "connection_rate", "request_rate").
func (m *Metrics) Limited(limit string) {
	if m != nil {
		m.limited.WithLabelValues(limit).Inc()
	}
}

// Observe records how long a part of a turn took: it is dialog.Config.Observe. Stage "turn"
// is a whole turn, stored (kefu_turn_seconds); the others ("nlu", "retrieval", "generate")
// are its parts (kefu_dialog_stage_seconds).
func (m *Metrics) Observe(stage string, d time.Duration) {
	if m == nil {
		return
	}
	if stage == "turn" {
		m.turn.Observe(d.Seconds())
		return
	}
	m.stages.WithLabelValues(stage).Observe(d.Seconds())
}

// BrokerStats is what a Broker may tell of its queue, for the metrics: frames waiting to go
// to the other instances and frames dropped since the start.
type BrokerStats interface {
	QueueStats() (queued int, dropped int64)
}

// brokerQueue is b's queue as the metrics show it; queued is -1 when b does not say.
func brokerQueue(b Broker) (queued int, dropped int64, ok bool) {
	switch b := b.(type) {
	case BrokerStats:
		q, d := b.QueueStats()
		return q, d, true
	case *PGBroker:
		return len(b.out), b.Dropped.Load(), true
	case *NATSBroker:
		return -1, b.Dropped.Load(), true
	}
	return 0, 0, false
}

// serverCollector reads, at scrape time, what the server holds: its connections' send
// queues, the broker's outbox, the database pool.
type serverCollector struct {
	s *Server

	queued, queuedMax, waiters        *prometheus.Desc
	outbox, dropped                   *prometheus.Desc
	poolTotal, poolIdle, poolUsed     *prometheus.Desc
	poolMax, poolBuilding             *prometheus.Desc
	poolAcquires, poolWait, poolEmpty *prometheus.Desc
	poolCanceled                      *prometheus.Desc
}

func newServerCollector(s *Server) *serverCollector {
	desc := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &serverCollector{s: s,
		queued:       desc("kefu_ws_send_queue_frames", "Frames waiting in the WebSocket connections' send queues, in all."),
		queuedMax:    desc("kefu_ws_send_queue_max_frames", "The longest send queue of a WebSocket connection (at 64 the connection is closed as slow)."),
		waiters:      desc("kefu_ws_customers", "Customer connections that said hello (subscribed to their session)."),
		outbox:       desc("kefu_broker_outbox_frames", "Frames waiting to be sent to the other instances."),
		dropped:      desc("kefu_broker_dropped_frames_total", "Frames not sent to the other instances because the broker's outbox was full or the broker refused them."),
		poolTotal:    desc("kefu_db_pool_connections", "Open database connections in the pool."),
		poolIdle:     desc("kefu_db_pool_idle_connections", "Idle database connections in the pool."),
		poolUsed:     desc("kefu_db_pool_acquired_connections", "Database connections in use."),
		poolMax:      desc("kefu_db_pool_max_connections", "The pool's largest size."),
		poolBuilding: desc("kefu_db_pool_constructing_connections", "Database connections being opened."),
		poolAcquires: desc("kefu_db_pool_acquires_total", "Connections taken from the pool."),
		poolWait:     desc("kefu_db_pool_acquire_wait_seconds_total", "Time spent taking connections from the pool, in all."),
		poolEmpty:    desc("kefu_db_pool_empty_acquires_total", "Takes that found no idle connection and had to wait for one."),
		poolCanceled: desc("kefu_db_pool_canceled_acquires_total", "Takes given up (their context ended) before a connection came."),
	}
}

// Describe implements prometheus.Collector.
func (c *serverCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.queued, c.queuedMax, c.waiters, c.outbox, c.dropped, c.poolTotal, c.poolIdle,
		c.poolUsed, c.poolMax, c.poolBuilding, c.poolAcquires, c.poolWait, c.poolEmpty, c.poolCanceled} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. It goes once through the connections, under the
// server's lock: about a millisecond for 100,000.
func (c *serverCollector) Collect(ch chan<- prometheus.Metric) {
	val := func(d *prometheus.Desc, t prometheus.ValueType, v float64) {
		ch <- prometheus.MustNewConstMetric(d, t, v)
	}
	s := c.s
	total, longest := 0, 0
	s.mu.Lock()
	for cn := range s.conns {
		n := cn.queued()
		total += n
		longest = max(longest, n)
	}
	waiters := len(s.waiters)
	s.mu.Unlock()
	val(c.queued, prometheus.GaugeValue, float64(total))
	val(c.queuedMax, prometheus.GaugeValue, float64(longest))
	val(c.waiters, prometheus.GaugeValue, float64(waiters))
	if queued, dropped, ok := brokerQueue(s.Broker); ok {
		if queued >= 0 {
			val(c.outbox, prometheus.GaugeValue, float64(queued))
		}
		val(c.dropped, prometheus.CounterValue, float64(dropped))
	}
	if s.Pool != nil {
		st := s.Pool.Stat()
		val(c.poolTotal, prometheus.GaugeValue, float64(st.TotalConns()))
		val(c.poolIdle, prometheus.GaugeValue, float64(st.IdleConns()))
		val(c.poolUsed, prometheus.GaugeValue, float64(st.AcquiredConns()))
		val(c.poolMax, prometheus.GaugeValue, float64(st.MaxConns()))
		val(c.poolBuilding, prometheus.GaugeValue, float64(st.ConstructingConns()))
		val(c.poolAcquires, prometheus.CounterValue, float64(st.AcquireCount()))
		val(c.poolWait, prometheus.CounterValue, st.AcquireDuration().Seconds())
		val(c.poolEmpty, prometheus.CounterValue, float64(st.EmptyAcquireCount()))
		val(c.poolCanceled, prometheus.CounterValue, float64(st.CanceledAcquireCount()))
	}
}
