package api

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kefu-dev/kefu"
	"github.com/kefu-dev/kefu/dialog"
	"github.com/kefu-dev/kefu/handoff"
)

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

// agentWS is the agent console's WebSocket: hello with the login token, then replies and
// closes; the server pushes assignments and customer messages.
func (s *Server) agentWS(c *gin.Context) {
	cn, ok := s.upgrade(c)
	if !ok {
		return
	}
	defer s.untrack(cn)
	var agentID atomic.Int64
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
			return s.agentJoined(ctx, cn, ag)
		}
		id := agentID.Load()
		if id == 0 {
			return kefu.Errorf("api.agentWS", kefu.Unauthorized, "say hello with your login token first")
		}
		switch f.Type {
		case "reply":
			if err := s.agentReply(ctx, cn, id, f); err != nil {
				cn.sendError(err, map[string]any{"client_id": f.ClientID, "session_id": f.SessionID})
			}
			return nil
		case "close":
			if err := s.agentClose(ctx, id, f); err != nil {
				cn.sendError(err, map[string]any{"session_id": f.SessionID})
			}
			return nil
		case "presence":
			if err := s.Agents.SetStatus(ctx, id, f.Status); err != nil {
				return err
			}
			if f.Status == handoff.Online {
				s.Queue.Wake()
			}
			s.Broker.Publish(agentTopic(id), mustJSON(gin.H{"type": "presence", "status": f.Status}))
			return nil
		default:
			return kefu.Errorf("api.agentWS", kefu.Invalid, "unknown frame type %q", f.Type)
		}
	})
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
	cn.sendJSON(gin.H{"type": "welcome", "agent": ag, "assignments": append([]gin.H{}, list...)})
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
	return gin.H{"type": "assigned", "assignment": a, "session": sess, "messages": nonNilMessages(msgs)}, nil
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

func (s *Server) agentClose(ctx context.Context, agentID int64, f frame) error {
	m, err := s.Engine.CloseByAgent(ctx, agentID, f.SessionID, f.Disposition)
	if err != nil {
		return err
	}
	topic := sessionTopic(f.SessionID)
	s.Broker.Publish(topic, mustJSON(gin.H{"type": "message", "message": m}))
	s.Broker.Publish(topic, mustJSON(gin.H{"type": "state", "state": dialog.StateBot}))
	s.Broker.Publish(agentTopic(agentID), mustJSON(gin.H{"type": "closed", "session_id": f.SessionID}))
	s.Queue.Wake() // capacity freed
	return nil
}
