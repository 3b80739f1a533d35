package api

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kefu-dev/kefu"
	"github.com/kefu-dev/kefu/handoff"
	"github.com/kefu-dev/kefu/nlu"
)

// deskRoutes are the agent console's REST routes besides the WebSocket: a conversation's
// whole context, accepting an offer, canned replies, the transfer picker's groups and
// colleagues, and the knowledge search. Every route needs an agent's (or supervisor's) login.
//
// An agent sees the conversations they hold, and reads (without acting on) those waiting for
// or held in a skill group they are a member of; supervisors read any. Anything else is
// not_found, so conversation ids cannot be probed.
func (s *Server) deskRoutes(r *gin.Engine) {
	desk := r.Group("/api/agent", limitBody(64<<10), s.agentAuth, s.requireRole(handoff.RoleAgent, handoff.RoleSupervisor))
	desk.GET("/assignments", s.deskAssignments)
	desk.GET("/sessions/:id/context", s.deskContext)
	desk.POST("/sessions/:id/accept", s.deskAccept)
	desk.GET("/canned", s.deskCanned)
	desk.GET("/groups", s.deskGroups)
	desk.GET("/agents", s.deskAgents)
	desk.GET("/kb/search", s.deskKBSearch)
}

func deskAgent(c *gin.Context) handoff.Agent { return c.MustGet("agent").(handoff.Agent) }

// deskAssignments is GET /api/agent/assignments: the conversations the agent holds, offered
// or accepted, oldest first.
func (s *Server) deskAssignments(c *gin.Context) {
	open, err := s.Queue.Open(c.Request.Context(), deskAgent(c).ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"assignments": append([]handoff.Assignment{}, open...), "server_time": time.Now()})
}

// mayRead decides whether ag may read a conversation: the open assignment (nil when there is
// none) and whether ag holds it, so may act on it.
func (s *Server) mayRead(ctx context.Context, ag handoff.Agent, sessionID int64) (*handoff.Assignment, bool, error) {
	const op = "api.mayRead"
	a, open, err := s.Queue.Current(ctx, sessionID)
	if err != nil {
		return nil, false, err
	}
	var cur *handoff.Assignment
	if open {
		cur = &a
	}
	switch {
	case open && a.AgentID == ag.ID:
		return cur, true, nil
	case ag.HasRole(handoff.RoleSupervisor):
		return cur, false, nil
	case open && a.GroupID != 0:
		groups, err := s.Desk.AgentGroups(ctx, ag.ID)
		if err != nil {
			return nil, false, err
		}
		if slices.Contains(groups, a.GroupID) {
			return cur, false, nil
		}
	}
	return nil, false, kefu.Errorf(op, kefu.NotFound, "conversation %d is not assigned to you or your groups", sessionID)
}

// deskContext is GET /api/agent/sessions/:id/context: everything an agent needs to take over
// without asking the customer again. The assignment (escalation reason, the customer's
// profile, skill group, transfer note, offer deadline; null when nobody holds it), the
// session (the flow in progress and its slots), the transcript with what the bot understood
// of each message (intent, confidence, entities, slots, flow step, the knowledge it cited),
// and the internal notes. "mine" says whether the agent holds it, so may act on it.
func (s *Server) deskContext(c *gin.Context) {
	ctx := c.Request.Context()
	id, err := pathID(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	a, mine, err := s.mayRead(ctx, deskAgent(c), id)
	if err != nil {
		s.fail(c, err)
		return
	}
	sess, err := s.Engine.Get(ctx, id)
	if err != nil {
		s.fail(c, err)
		return
	}
	msgs, err := s.Engine.Messages(ctx, id, 0, 0)
	if err != nil {
		s.fail(c, err)
		return
	}
	notes, err := s.Desk.Notes(ctx, id)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"assignment": a, "mine": mine, "session": sess, "messages": nonNilMessages(msgs),
		"notes": append([]handoff.Note{}, notes...), "server_time": time.Now()})
}

// deskAccept is POST /api/agent/sessions/:id/accept: the agent takes an offered conversation
// before its offer lapses (replying accepts too). Accepting twice is fine; a conversation
// that is not offered to the agent (any more) is not_found.
func (s *Server) deskAccept(c *gin.Context) {
	id, err := pathID(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.agentAccept(c.Request.Context(), deskAgent(c).ID, id); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"session_id": id, "accepted": true})
}

// deskCanned is GET /api/agent/canned?lang=: the canned replies, by shortcut; with lang,
// those in that language and those for any language.
func (s *Server) deskCanned(c *gin.Context) {
	list, err := s.Desk.CannedReplies(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	if lang := c.Query("lang"); lang != "" {
		list = slices.DeleteFunc(list, func(x handoff.Canned) bool { return x.Language != "" && x.Language != lang })
	}
	c.JSON(http.StatusOK, gin.H{"canned": append([]handoff.Canned{}, list...)})
}

// deskGroup is a skill group as the transfer picker shows it.
type deskGroup struct {
	Name      string   `json:"name"`
	Tier      int      `json:"tier"`
	Languages []string `json:"languages"`
	Online    int      `json:"online"` // members online besides the asking agent: 0 refuses a transfer
	Waiting   int      `json:"waiting"`
}

// deskColleague is an agent as the transfer picker shows it.
type deskColleague struct {
	ID     int64    `json:"id"`
	Name   string   `json:"name"`
	Status string   `json:"status"`
	Room   bool     `json:"room"` // can take another conversation
	Groups []string `json:"groups"`
}

// deskGroups is GET /api/agent/groups: the skill groups with their members online.
func (s *Server) deskGroups(c *gin.Context) {
	ctx := c.Request.Context()
	me := deskAgent(c).ID
	groups, err := s.Desk.Groups(ctx)
	if err != nil {
		s.fail(c, err)
		return
	}
	live, err := s.Queue.Live(ctx)
	if err != nil {
		s.fail(c, err)
		return
	}
	online := map[int64]bool{}
	for _, a := range live.Agents {
		online[a.ID] = a.Status == handoff.Online
	}
	waiting := map[int64]int{}
	for _, g := range live.Groups {
		waiting[g.ID] = g.Waiting
	}
	out := make([]deskGroup, 0, len(groups))
	for _, g := range groups {
		n := 0
		for _, m := range g.Members {
			if m != me && online[m] {
				n++
			}
		}
		out = append(out, deskGroup{Name: g.Name, Tier: g.Tier, Languages: g.Languages, Online: n, Waiting: waiting[g.ID]})
	}
	c.JSON(http.StatusOK, gin.H{"groups": out})
}

// deskAgents is GET /api/agent/agents: the colleagues one can transfer to, online first.
func (s *Server) deskAgents(c *gin.Context) {
	me := deskAgent(c).ID
	live, err := s.Queue.Live(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]deskColleague, 0, len(live.Agents))
	for _, a := range live.Agents {
		if a.ID == me {
			continue
		}
		out = append(out, deskColleague{ID: a.ID, Name: a.Name, Status: a.Status, Room: a.Active < a.Max, Groups: a.Groups})
	}
	c.JSON(http.StatusOK, gin.H{"agents": out})
}

// kbHit is a knowledge passage the console can insert into a reply.
type kbHit struct {
	Key      string  `json:"key"`
	Title    string  `json:"title"`
	Language string  `json:"language"`
	Version  int     `json:"version"`
	Question string  `json:"question"`
	Text     string  `json:"text"`
	Score    float64 `json:"score"`
	Answers  bool    `json:"answers"` // the bot would give this one
	Link     string  `json:"link,omitempty"`
}

// deskKBSearch is GET /api/agent/kb/search?q=&lang=: the published knowledge closest to q in
// lang (detected from q when empty), the entry the bot would answer with first. It is a
// trial: nothing is recorded as a customer's question.
func (s *Server) deskKBSearch(c *gin.Context) {
	q := strings.TrimSpace(c.Query("q"))
	if q == "" {
		s.fail(c, kefu.Errorf("api.deskKBSearch", kefu.Invalid, "q: say what to search for"))
		return
	}
	lang := c.Query("lang")
	if lang == "" {
		lang = nlu.DetectLanguage(q)
	}
	t, err := s.KB.Try(c.Request.Context(), q, lang, "")
	if err != nil {
		s.fail(c, err)
		return
	}
	hits := make([]kbHit, 0, len(t.Passages))
	for _, p := range t.Passages {
		h := kbHit{Key: p.Key, Title: p.Title, Language: p.Language, Version: p.Version, Question: p.Question,
			Text: p.Text, Score: p.Cosine, Answers: p.Answers}
		if p.Answers {
			h.Link = t.Answer.Source.Link
		}
		hits = append(hits, h)
	}
	// The bot's own answer first.
	slices.SortStableFunc(hits, func(a, b kbHit) int {
		switch {
		case a.Answers == b.Answers:
			return 0
		case a.Answers:
			return -1
		default:
			return 1
		}
	})
	c.JSON(http.StatusOK, gin.H{"language": lang, "found": t.Answer.Found, "results": hits})
}
