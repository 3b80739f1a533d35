package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kefu-dev/kefu"
	"github.com/kefu-dev/kefu/handoff"
)

// Report ranges: the default when none is given, and the longest one may ask for.
const (
	defaultReportRange = 7 * 24 * time.Hour
	maxReportRange     = 366 * 24 * time.Hour
)

// supervisorRoutes are the supervisor's view (live queue, agents, SLA at risk), the metrics
// report, the Prometheus endpoint and the administration of groups, agents and canned replies.
// Every /api route needs a supervisor's login (admins hold every role); creating accounts
// needs an admin's.
func (s *Server) supervisorRoutes(r *gin.Engine) {
	sup := r.Group("/api/supervisor", limitBody(64<<10), s.agentAuth, s.requireRole(handoff.RoleSupervisor))
	sup.GET("/live", s.supLive)
	sup.GET("/report", s.supReport)
	sup.GET("/tickets", s.supTickets)
	sup.POST("/tickets/:id/close", s.supCloseTicket)
	sup.POST("/transfer", s.supTransfer)

	adm := r.Group("/api/admin", limitBody(64<<10), s.agentAuth, s.requireRole(handoff.RoleSupervisor))
	adm.GET("/groups", s.admGroups)
	adm.PUT("/groups", s.admSaveGroup)
	adm.GET("/agents", s.admAgents)
	adm.POST("/agents", s.requireRole(handoff.RoleAdmin), s.admCreateAgent)
	adm.PATCH("/agents/:id", s.admUpdateAgent)
	adm.GET("/canned", s.admCanned)
	adm.PUT("/canned", s.admSaveCanned)
	adm.DELETE("/canned/:id", s.admDeleteCanned)

	// Aggregates only, no customer data: served without a login on the main listener until
	// the admin listener exists.
	r.GET("/metrics", gin.WrapH(s.Metrics.Handler()))
}

// supLive is the desk right now: the queue per group, the agents and the conversations whose
// wait is past 80% of their SLA. now is the server's clock, which the waits are measured by.
func (s *Server) supLive(c *gin.Context) {
	l, err := s.Queue.Live(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, struct {
		handoff.Live
		Now time.Time `json:"now"`
	}{l, s.Queue.Now()})
}

// supReport is GET /api/supervisor/report?from=&to=: the metrics of the conversations
// escalated in [from, to), overall and per agent, group and day (UTC). from and to are RFC
// 3339 times or dates (YYYY-MM-DD, UTC); a date as to includes that day. The default is the
// last 7 days; a report covers at most 366 days.
func (s *Server) supReport(c *gin.Context) {
	from, to, err := reportRange(c.Query("from"), c.Query("to"), s.Queue.Now())
	if err != nil {
		s.fail(c, err)
		return
	}
	rep, err := s.Queue.Report(c.Request.Context(), from, to)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, rep)
}

// reportRange reads a report's bounds; now is the default end.
func reportRange(fromQ, toQ string, now time.Time) (from, to time.Time, err error) {
	const op = "api.report"
	to = now
	if toQ != "" {
		if to, err = parseWhen(toQ, true); err != nil {
			return time.Time{}, time.Time{}, kefu.Errorf(op, kefu.Invalid, "to: %v", err)
		}
	}
	from = to.Add(-defaultReportRange)
	if fromQ != "" {
		if from, err = parseWhen(fromQ, false); err != nil {
			return time.Time{}, time.Time{}, kefu.Errorf(op, kefu.Invalid, "from: %v", err)
		}
	}
	if !from.Before(to) {
		return time.Time{}, time.Time{}, kefu.Errorf(op, kefu.Invalid, "from (%s) must be before to (%s)",
			from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	if to.Sub(from) > maxReportRange {
		return time.Time{}, time.Time{}, kefu.Errorf(op, kefu.Invalid, "a report covers at most 366 days")
	}
	return from, to, nil
}

// parseWhen reads an RFC 3339 time or a date (midnight UTC; the next midnight when it ends a
// range, so that the day is included).
func parseWhen(v string, end bool) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	d, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return time.Time{}, errors.New("give an RFC 3339 time (2025-06-01T08:00:00Z) or a date (2025-06-01), not " + quoteInput(v, 40))
	}
	if end {
		d = d.AddDate(0, 0, 1)
	}
	return d, nil
}

// quoteInput shows a user's input in an error, shortened.
func quoteInput(v string, n int) string {
	r := []rune(v)
	if len(r) > n {
		return `"` + string(r[:n]) + `…"`
	}
	return `"` + v + `"`
}

// supTickets lists offline tickets: ?state=open (the default), closed or all; ?limit= up to 500.
func (s *Server) supTickets(c *gin.Context) {
	state := c.DefaultQuery("state", "open")
	switch state {
	case "open", "closed":
	case "all":
		state = ""
	default:
		s.fail(c, kefu.Errorf("api.supTickets", kefu.Invalid, "state must be open, closed or all"))
		return
	}
	limit, err := queryInt(c, "limit")
	if err != nil {
		s.fail(c, err)
		return
	}
	if limit > 500 {
		s.fail(c, kefu.Errorf("api.supTickets", kefu.Invalid, "limit is at most 500"))
		return
	}
	list, err := s.Desk.Tickets(c.Request.Context(), state, limit)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"tickets": jsonList(list)})
}

func (s *Server) supCloseTicket(c *gin.Context) {
	id, err := pathID(c)
	if err == nil {
		err = s.Desk.CloseTicket(c.Request.Context(), id)
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// supTransfer is a supervisor moving any assigned conversation to an agent (online, with
// room) or to a skill group's queue (with someone online). The agent who had it gets
// "transferred", as after their own transfer; the new agent and the customer are told as
// after any transfer.
func (s *Server) supTransfer(c *gin.Context) {
	ctx := c.Request.Context()
	var t handoff.Transfer
	if err := bindJSON(c, &t); err != nil {
		s.fail(c, err)
		return
	}
	if t.SessionID <= 0 {
		s.fail(c, kefu.Errorf("api.supTransfer", kefu.Invalid, "session_id must be a positive integer"))
		return
	}
	before, _, err := s.Queue.Current(ctx, t.SessionID)
	if err != nil {
		s.fail(c, err)
		return
	}
	sup := c.MustGet("agent").(handoff.Agent)
	a, err := s.Queue.Transfer(ctx, sup.ID, true, t)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.Metrics.Transferred(a)
	s.log.InfoContext(ctx, "supervisor transferred a conversation", "session_id", t.SessionID, "supervisor_id", sup.ID,
		"from_agent", before.AgentID, "to_agent", t.ToAgent, "to_group", t.ToGroup)
	if before.AgentID != 0 && before.AgentID != a.AgentID {
		s.Broker.Publish(agentTopic(before.AgentID), mustJSON(gin.H{"type": "transferred", "session_id": t.SessionID,
			"to_agent": t.ToAgent, "to_group": t.ToGroup, "by_supervisor": sup.Name}))
	}
	if a.AgentID == 0 { // back in a queue; a transfer to an agent is announced by OnAssigned
		s.announceRequeued(ctx, t.SessionID)
	}
	c.JSON(http.StatusOK, a)
}

// announceRequeued tells the customer that they wait for a person again: the message the
// transfer wrote, and their place in the queue.
func (s *Server) announceRequeued(ctx context.Context, sessionID int64) {
	if s.Engine == nil {
		return
	}
	sess, err := s.Engine.Get(ctx, sessionID)
	if err != nil {
		s.log.WarnContext(ctx, "could not load a requeued conversation", "session_id", sessionID, "err", err)
		return
	}
	if msgs, err := s.Engine.Messages(ctx, sessionID, sess.LastSeq-1, 1); err == nil && len(msgs) == 1 && msgs[0].Meta.Event == "requeued" {
		s.Broker.Publish(sessionTopic(sessionID), mustJSON(gin.H{"type": "message", "message": msgs[0]}))
	}
	s.sendQueueState(ctx, sess)
}

func (s *Server) admGroups(c *gin.Context) {
	list, err := s.Desk.Groups(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"groups": jsonList(list)})
}

// admSaveGroup is PUT /api/admin/groups {group}: creates the group or changes the one of that
// name; members, when given, replace the old ones.
func (s *Server) admSaveGroup(c *gin.Context) {
	var g handoff.Group
	if err := bindJSON(c, &g); err != nil {
		s.fail(c, err)
		return
	}
	saved, err := s.Desk.SaveGroup(c.Request.Context(), g)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.log.InfoContext(c.Request.Context(), "skill group saved", "group", saved.Name, "by", actor(c))
	s.Queue.Wake() // members or strategy may let waiting conversations through
	c.JSON(http.StatusOK, saved)
}

// accountView is an account as supervisors see it: never its password hash, with its load and
// groups when it takes conversations.
type accountView struct {
	handoff.Agent
	Active   int       `json:"active"`
	Groups   []string  `json:"groups"`
	LastSeen time.Time `json:"last_seen,omitzero"`
}

func (s *Server) admAgents(c *gin.Context) {
	ctx := c.Request.Context()
	l, err := s.Queue.Live(ctx)
	if err != nil {
		s.fail(c, err)
		return
	}
	live := map[int64]handoff.AgentLive{}
	for _, a := range l.Agents {
		live[a.ID] = a
	}
	all, err := s.Agents.List(ctx)
	if err != nil {
		s.fail(c, err)
		return
	}
	var list []accountView
	for _, ag := range all {
		a := accountView{Agent: ag, Groups: []string{}}
		if x, ok := live[ag.ID]; ok {
			a.Active, a.Groups, a.LastSeen = x.Active, x.Groups, x.LastSeen
		}
		list = append(list, a)
	}
	c.JSON(http.StatusOK, gin.H{"agents": jsonList(list)})
}

// admCreateAgent is POST /api/admin/agents (admins only): a new account with its roles.
func (s *Server) admCreateAgent(c *gin.Context) {
	var req struct {
		Email     string   `json:"email"`
		Name      string   `json:"name"`
		Password  string   `json:"password"`
		Languages []string `json:"languages"`
		MaxChats  int      `json:"max_chats"`
		Roles     []string `json:"roles"`
	}
	if err := bindJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if req.MaxChats < 0 || req.MaxChats > 100 {
		s.fail(c, kefu.Errorf("api.admCreateAgent", kefu.Invalid, "max_chats is 1 to 100 (0: the default, 5)"))
		return
	}
	ag, err := s.Agents.Create(c.Request.Context(), handoff.Agent{Email: req.Email, Name: req.Name, Languages: req.Languages,
		MaxChats: req.MaxChats, Roles: req.Roles}, req.Password)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.log.InfoContext(c.Request.Context(), "account created", "agent_id", ag.ID, "roles", ag.Roles, "by", actor(c))
	c.JSON(http.StatusCreated, ag)
}

// admUpdateAgent is PATCH /api/admin/agents/:id {name, languages, max_chats, channel_max,
// roles}: supervisors change capacity and languages; only admins change roles.
func (s *Server) admUpdateAgent(c *gin.Context) {
	id, err := pathID(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var ch handoff.AgentChange
	if err := bindJSON(c, &ch); err != nil {
		s.fail(c, err)
		return
	}
	if ch.Roles != nil && !c.MustGet("agent").(handoff.Agent).HasRole(handoff.RoleAdmin) {
		s.fail(c, kefu.Errorf("api.admUpdateAgent", kefu.Forbidden, "only an admin changes roles"))
		return
	}
	ag, err := s.Agents.Update(c.Request.Context(), id, ch)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.log.InfoContext(c.Request.Context(), "account changed", "agent_id", id, "by", actor(c))
	s.Queue.Wake() // more room, perhaps
	c.JSON(http.StatusOK, ag)
}

func (s *Server) admDeleteCanned(c *gin.Context) {
	id, err := pathID(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.Desk.DeleteCanned(c.Request.Context(), id); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) admCanned(c *gin.Context) {
	list, err := s.Desk.CannedReplies(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"canned": jsonList(list)})
}

// admSaveCanned is PUT /api/admin/canned {shortcut, language, title, text}: creates or
// replaces the canned reply of a shortcut and language.
func (s *Server) admSaveCanned(c *gin.Context) {
	var cr handoff.Canned
	if err := bindJSON(c, &cr); err != nil {
		s.fail(c, err)
		return
	}
	saved, err := s.Desk.SaveCanned(c.Request.Context(), cr)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, saved)
}

// jsonList makes an empty list [] in JSON rather than null.
func jsonList[T any](list []T) []T {
	if list == nil {
		return []T{}
	}
	return list
}
