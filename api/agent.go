package api

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kefu-dev/kefu"
	"github.com/kefu-dev/kefu/dialog"
	"github.com/kefu-dev/kefu/handoff"
)

// heartbeatEvery is how often the console beats; handoff's HeartbeatTimeout (90 s) makes a
// console that stopped beating away.
const heartbeatEvery = 30 * time.Second

// agentLogin is POST /api/agent/login {"email","password"} → {"token","agent"}.
func (s *Server) agentLogin(c *gin.Context) {
	var req struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := bindJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	token, ag, err := s.Agents.Login(c.Request.Context(), req.Email, req.Password)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"token": token, "agent": ag})
}

func (s *Server) agentAuth(c *gin.Context) {
	ag, err := s.Agents.Authenticate(c.Request.Context(), bearer(c))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Set("agent", ag)
	c.Next()
}

// agentMessages is the transcript of a session assigned to the agent.
func (s *Server) agentMessages(c *gin.Context) {
	ag := c.MustGet("agent").(handoff.Agent)
	id, err := pathID(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	sess, err := s.Engine.Get(c.Request.Context(), id)
	if err == nil && sess.AgentID != ag.ID {
		err = kefu.Errorf("api.agentMessages", kefu.NotFound, "session %d is not assigned to you", id)
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	msgs, err := s.Engine.Messages(c.Request.Context(), id, 0, 0)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"session": sess, "messages": nonNilMessages(msgs)})
}

// agentWS is the agent console's WebSocket: hello with the login token, then the desk's
// actions on the conversations the agent holds (accept, reply, typing, note, transfer,
// close), presence and heartbeats; the server pushes assignments, customer messages, notes,
// and a "sync" of what the agent holds after every heartbeat.
//
// A conversation the agent does not hold (never did, closed, transferred, or an offer that
// lapsed) is "not_found" to every action; errors about a conversation carry its session_id
// and the frame type that failed.
func (s *Server) agentWS(c *gin.Context) {
	cn, ok := s.upgrade(c)
	if !ok {
		return
	}
	defer s.untrack(cn)
	var agentID atomic.Int64
	var token string // the login, checked again at every heartbeat: an expired one ends the console
	t := helloTimer(cn, func() bool { return agentID.Load() != 0 })
	defer t.Stop()
	var unsubscribe func()
	defer func() {
		if unsubscribe != nil {
			unsubscribe()
			s.agentLeft(agentID.Load())
		}
	}()
	cn.readLoop(context.WithoutCancel(c.Request.Context()), func(ctx context.Context, data []byte) error {
		f, err := decodeFrame(data)
		if err != nil {
			return err
		}
		if f.Type == "ping" {
			cn.sendJSON(gin.H{"type": "pong"})
			return nil
		}
		if f.Type == "hello" {
			if agentID.Load() != 0 {
				return kefu.Errorf("api.hello", kefu.Conflict, "this connection already said hello")
			}
			ag, err := s.Agents.Authenticate(ctx, f.Token)
			if err != nil {
				return err
			}
			if !ag.HasRole(handoff.RoleAgent) {
				return kefu.Errorf("api.hello", kefu.Forbidden, "the agent console needs the agent role")
			}
			unsubscribe = s.Broker.Subscribe(agentTopic(ag.ID), cn)
			agentID.Store(ag.ID)
			token = f.Token
			return s.agentJoined(ctx, cn, ag)
		}
		id := agentID.Load()
		if id == 0 {
			return kefu.Errorf("api.agentWS", kefu.Unauthorized, "say hello with your login token first")
		}
		var err2 error
		switch f.Type {
		case "heartbeat":
			return s.agentHeartbeat(ctx, cn, id, token)
		case "presence":
			if err := s.Agents.SetStatus(ctx, id, f.Status); err != nil {
				return err
			}
			if f.Status == handoff.Online {
				s.Queue.Wake()
			}
			s.Broker.Publish(agentTopic(id), mustJSON(gin.H{"type": "presence", "status": f.Status}))
			return nil
		case "reply":
			if err := s.agentReply(ctx, cn, id, f); err != nil {
				cn.sendError(err, map[string]any{"frame": f.Type, "client_id": f.ClientID, "session_id": f.SessionID})
			}
			return nil
		case "accept":
			err2 = s.agentAccept(ctx, id, f.SessionID)
		case "typing":
			err2 = s.agentTyping(ctx, id, f.SessionID, data)
		case "note":
			err2 = s.agentNote(ctx, id, f)
		case "transfer":
			err2 = s.agentTransfer(ctx, id, f.SessionID, data)
		case "close":
			err2 = s.agentClose(ctx, id, f)
		default:
			return kefu.Errorf("api.agentWS", kefu.Invalid, "unknown frame type %q", f.Type)
		}
		if err2 != nil {
			cn.sendError(err2, map[string]any{"frame": f.Type, "session_id": f.SessionID})
		}
		return nil
	})
}

// deskFrame is what the desk's frames carry besides the common fields.
type deskFrame struct {
	Typing  *bool  `json:"typing"`   // typing: false when the agent stopped
	ToAgent int64  `json:"to_agent"` // transfer: to this agent…
	ToGroup string `json:"to_group"` // …or to this skill group's queue
	Note    string `json:"note"`     // transfer: the note the next agent reads
}

func decodeDeskFrame(data []byte) (deskFrame, error) {
	var d deskFrame
	if err := json.Unmarshal(data, &d); err != nil {
		return deskFrame{}, kefu.Errorf("api.decodeFrame", kefu.Invalid, "the frame's fields have the wrong types: %s", jsonProblem(err))
	}
	return d, nil
}

// closeLoggedOut ends a console whose login expired; the console asks for the password.
var closeLoggedOut = closeReason{4503, "login expired: log in again"}

// agentHeartbeat keeps the agent present (a console that stops beating goes away after
// handoff's HeartbeatTimeout) and answers with a "sync": the agent's presence and the
// conversations they hold. That is how a console learns what changed without a frame of its
// own: an offer that lapsed (the router gave it to someone else and made the agent away), or
// a conversation a supervisor moved.
func (s *Server) agentHeartbeat(ctx context.Context, cn *conn, agentID int64, token string) error {
	if err := s.Agents.Heartbeat(ctx, agentID); err != nil {
		return err
	}
	ag, err := s.Agents.Authenticate(ctx, token)
	if kefu.CodeOf(err) == kefu.Unauthorized || (err == nil && ag.ID != agentID) {
		cn.sendError(kefu.Errorf("api.heartbeat", kefu.Unauthorized, "your login has expired: log in again"), nil)
		cn.shut(closeLoggedOut)
		return nil
	}
	if err != nil {
		return err
	}
	open, err := s.Queue.Open(ctx, agentID)
	if err != nil {
		return err
	}
	cn.sendJSON(gin.H{"type": "sync", "status": ag.Status, "assignments": append([]handoff.Assignment{}, open...),
		"server_time": time.Now()})
	return nil
}

// holds returns the open assignment of a conversation the agent holds, offered or accepted;
// anything else is NotFound.
func (s *Server) holds(ctx context.Context, agentID, sessionID int64) (handoff.Assignment, error) {
	a, open, err := s.Queue.Current(ctx, sessionID)
	if err != nil {
		return handoff.Assignment{}, err
	}
	if !open || a.AgentID != agentID {
		return handoff.Assignment{}, kefu.Errorf("api.holds", kefu.NotFound, "conversation %d is not assigned to you", sessionID)
	}
	return a, nil
}

// agentAccept takes an offered conversation; every console of the agent hears it.
func (s *Server) agentAccept(ctx context.Context, agentID, sessionID int64) error {
	if err := s.Queue.Accept(ctx, agentID, sessionID); err != nil {
		return err
	}
	s.Broker.Publish(agentTopic(agentID), mustJSON(gin.H{"type": "accepted", "session_id": sessionID}))
	return nil
}

// agentTyping tells the customer that the agent is typing (or stopped):
// {"type":"typing","role":"agent","typing":true} on the session's connections.
func (s *Server) agentTyping(ctx context.Context, agentID, sessionID int64, data []byte) error {
	d, err := decodeDeskFrame(data)
	if err != nil {
		return err
	}
	if _, err := s.holds(ctx, agentID, sessionID); err != nil {
		return err
	}
	typing := d.Typing == nil || *d.Typing
	s.Broker.Publish(sessionTopic(sessionID), mustJSON(gin.H{"type": "typing", "role": "agent", "typing": typing}))
	return nil
}

// agentNote adds an internal note to a conversation the agent holds. Notes go to the agents'
// topics only, never to the session's: customers do not see them.
func (s *Server) agentNote(ctx context.Context, agentID int64, f frame) error {
	if _, err := s.holds(ctx, agentID, f.SessionID); err != nil {
		return err
	}
	n, err := s.Desk.AddNote(ctx, agentID, f.SessionID, f.Text)
	if err != nil {
		return err
	}
	s.Broker.Publish(agentTopic(agentID), mustJSON(gin.H{"type": "note", "session_id": f.SessionID, "client_id": f.ClientID, "note": n}))
	return nil
}

// agentTransfer moves a conversation the agent holds to another agent (who must be online with
// room) or to a skill group's queue (with someone online), with a note for whoever takes it.
// The agent's consoles get "transferred"; the new agent gets "assigned" through OnAssigned (at
// once, or when the router gives the group's conversation to someone); the customer is told.
func (s *Server) agentTransfer(ctx context.Context, agentID, sessionID int64, data []byte) error {
	d, err := decodeDeskFrame(data)
	if err != nil {
		return err
	}
	a, err := s.Queue.Transfer(ctx, agentID, false, handoff.Transfer{SessionID: sessionID, ToAgent: d.ToAgent, ToGroup: d.ToGroup, Note: d.Note})
	if err != nil {
		return err
	}
	s.Metrics.Transferred(a)
	s.Broker.Publish(agentTopic(agentID), mustJSON(gin.H{"type": "transferred", "session_id": sessionID,
		"to_agent": d.ToAgent, "to_group": d.ToGroup}))
	if a.AgentID != 0 {
		return nil // OnAssigned has told the new agent and the customer
	}
	return s.tellRequeued(ctx, sessionID)
}

// tellRequeued tells a customer whose conversation went back to the queue (a transfer to a
// group, a lapsed offer) that they wait again, and where.
func (s *Server) tellRequeued(ctx context.Context, sessionID int64) error {
	sess, err := s.Engine.Get(ctx, sessionID)
	if err != nil {
		return err
	}
	if msgs, err := s.Engine.Messages(ctx, sessionID, sess.LastSeq-1, 1); err == nil && len(msgs) == 1 && msgs[0].Meta.Event == "requeued" {
		s.Broker.Publish(sessionTopic(sessionID), mustJSON(gin.H{"type": "message", "message": msgs[0]}))
	}
	s.sendQueueState(ctx, sess)
	return nil
}

// OnLapsed is the queue's callback after offers lapsed: each agent learns at once that the
// conversation is gone (and that they are away), each customer that they wait again.
func (s *Server) OnLapsed(ctx context.Context, ls []handoff.Lapse) {
	for _, l := range ls {
		s.Broker.Publish(agentTopic(l.AgentID), mustJSON(gin.H{"type": "lapsed", "session_id": l.SessionID, "status": handoff.Away}))
		if err := s.tellRequeued(ctx, l.SessionID); err != nil {
			s.log.WarnContext(ctx, "could not tell a customer their offer lapsed", "session_id", l.SessionID, "err", err)
		}
	}
}

// agentJoined marks the agent online and sends them what they already own.
func (s *Server) agentJoined(ctx context.Context, cn *conn, ag handoff.Agent) error {
	s.mu.Lock()
	s.presence[ag.ID]++
	s.mu.Unlock()
	if err := s.Agents.SetStatus(ctx, ag.ID, handoff.Online); err != nil {
		return err
	}
	ag.Status = handoff.Online
	open, err := s.Queue.Open(ctx, ag.ID)
	if err != nil {
		return err
	}
	var list []gin.H
	for _, a := range open {
		f, err := s.assignmentFrame(ctx, a)
		if err != nil {
			return err
		}
		list = append(list, f)
	}
	cn.sendJSON(gin.H{"type": "welcome", "agent": ag, "assignments": append([]gin.H{}, list...),
		"dispositions": handoff.Dispositions, "heartbeat_seconds": int(heartbeatEvery / time.Second), "server_time": time.Now()})
	s.Queue.Wake()
	return nil
}

// agentLeft marks an agent offline when their last console connection closes.
func (s *Server) agentLeft(id int64) {
	s.mu.Lock()
	s.presence[id]--
	last := s.presence[id] <= 0
	if last {
		delete(s.presence, id)
	}
	s.mu.Unlock()
	if last {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Agents.SetStatus(ctx, id, handoff.Offline); err != nil {
			s.log.Warn("could not mark agent offline", "agent_id", id, "err", err)
		}
	}
}

func (s *Server) assignmentFrame(ctx context.Context, a handoff.Assignment) (gin.H, error) {
	sess, err := s.Engine.Get(ctx, a.SessionID)
	if err != nil {
		return nil, err
	}
	msgs, err := s.Engine.Messages(ctx, a.SessionID, 0, 0)
	if err != nil {
		return nil, err
	}
	return gin.H{"type": "assigned", "assignment": a, "session": sess, "messages": nonNilMessages(msgs), "server_time": time.Now()}, nil
}

// OnAssigned is the router's callback after conversations are given to agents: each agent
// gets theirs with the whole transcript, and each customer learns that a person has joined.
func (s *Server) OnAssigned(ctx context.Context, as []handoff.Assignment) {
	for _, a := range as {
		f, err := s.assignmentFrame(ctx, a)
		if err != nil {
			s.log.ErrorContext(ctx, "could not load an assigned conversation", "session_id", a.SessionID, "err", err)
			continue
		}
		s.Broker.Publish(agentTopic(a.AgentID), mustJSON(f))
		msgs, _ := f["messages"].([]dialog.Message)
		if n := len(msgs); n > 0 && msgs[n-1].Meta.Event == "agent_joined" {
			s.Broker.Publish(sessionTopic(a.SessionID), mustJSON(gin.H{"type": "message", "message": msgs[n-1]}))
		}
		s.Broker.Publish(sessionTopic(a.SessionID), mustJSON(gin.H{"type": "state", "state": dialog.StateAgent}))
	}
	s.Metrics.Assigned(as)
}

func (s *Server) agentReply(ctx context.Context, cn *conn, agentID int64, f frame) error {
	m, dup, err := s.Engine.AgentReply(ctx, agentID, f.SessionID, f.ClientID, f.Text)
	if err != nil {
		return err
	}
	cn.sendJSON(gin.H{"type": "ack", "client_id": f.ClientID, "session_id": f.SessionID, "seq": m.Seq, "duplicate": dup})
	if dup {
		return nil
	}
	frame := mustJSON(gin.H{"type": "message", "message": m})
	s.Broker.Publish(sessionTopic(f.SessionID), frame)
	s.Broker.Publish(agentTopic(agentID), frame)
	return nil
}

// agentClose ends the agent's part of a conversation with a disposition (default resolved);
// the customer gets the closing message, which asks them to rate the help (Meta.Survey).
func (s *Server) agentClose(ctx context.Context, agentID int64, f frame) error {
	if f.Disposition != "" && !slices.Contains(handoff.Dispositions, f.Disposition) {
		return kefu.Errorf("api.agentClose", kefu.Invalid, "unknown disposition %q: one of %s", f.Disposition, strings.Join(handoff.Dispositions, ", "))
	}
	m, err := s.Engine.CloseByAgent(ctx, agentID, f.SessionID, f.Disposition)
	if err != nil {
		return err
	}
	topic := sessionTopic(f.SessionID)
	s.Broker.Publish(topic, mustJSON(gin.H{"type": "message", "message": m}))
	s.Broker.Publish(topic, mustJSON(gin.H{"type": "state", "state": dialog.StateBot}))
	s.Broker.Publish(agentTopic(agentID), mustJSON(gin.H{"type": "closed", "session_id": f.SessionID}))
	s.Metrics.Closed(f.Disposition)
	s.Queue.Wake() // capacity freed
	return nil
}
