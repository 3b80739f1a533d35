package api

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/gin-gonic/gin"

	"github.com/kefu-dev/kefu"
	"github.com/kefu-dev/kefu/dialog"
	"github.com/kefu-dev/kefu/handoff"
	"github.com/kefu-dev/kefu/retrieval"
)

// createSession starts a conversation: POST /api/sessions {"channel","language","profile",
// "signature"} → {"session_id","token","state","verified"}. The token is shown once; the
// widget keeps it. The profile ({"name","email","tier","region","product"}, all optional) is
// what the embedding site tells about the customer; it is verified when signature is its
// signature (dialog.CanonicalProfile), and kept unverified otherwise.
func (s *Server) createSession(c *gin.Context) {
	var req struct {
		Channel  string `json:"channel"`
		Language string `json:"language"`
		identity
	}
	if c.Request.ContentLength != 0 {
		if err := bindJSON(c, &req); err != nil {
			s.fail(c, err)
			return
		}
	}
	sess, token, err := s.Engine.StartSession(c.Request.Context(), dialog.NewSession{Channel: req.Channel, Language: req.Language,
		Profile: s.verify(req.identity)})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"session_id": sess.ID, "token": token, "state": sess.State, "verified": sess.Profile.Verified})
}

// identity is the customer's profile as the embedding site sent it, with its signature: in
// the body that creates a session, or in the hello frame (a customer who logged in on the
// site after the conversation began).
type identity struct {
	Profile   *handoff.Profile `json:"profile"`
	Signature string           `json:"signature"`
}

// verify is the profile of id, verified if its signature holds; the zero profile without one.
func (s *Server) verify(id identity) handoff.Profile {
	if id.Profile == nil {
		return handoff.Profile{}
	}
	return s.Engine.VerifyProfile(*id.Profile, id.Signature)
}

// customerMessages is GET /api/sessions/:id/messages?after=N with the session token as a
// bearer token: the customer's own transcript, for clients that poll.
func (s *Server) customerMessages(c *gin.Context) {
	id, err := pathID(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if _, err := s.Engine.Authorize(c.Request.Context(), id, bearer(c)); err != nil {
		s.fail(c, err)
		return
	}
	after, _ := strconv.ParseInt(c.Query("after"), 10, 64)
	msgs, err := s.Engine.Messages(c.Request.Context(), id, after, 0)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"messages": nonNilMessages(forCustomer(msgs))})
}

// customerFeedback is a customer's thumbs up or down on one of the bot's answers in their own
// session: {"seq", "vote": 1|-1, "comment"}.
func (s *Server) customerFeedback(c *gin.Context) {
	const op = "api.customerFeedback"
	id, err := pathID(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	if _, err := s.Engine.Authorize(ctx, id, bearer(c)); err != nil {
		s.fail(c, err)
		return
	}
	var body struct {
		Seq     int64  `json:"seq"`
		Vote    int    `json:"vote"`
		Comment string `json:"comment"`
	}
	if err := bindJSON(c, &body); err != nil {
		s.fail(c, err)
		return
	}
	msgs, err := s.Engine.Messages(ctx, id, body.Seq-1, 1)
	if err != nil {
		s.fail(c, err)
		return
	}
	if len(msgs) == 0 || msgs[0].Seq != body.Seq || msgs[0].Role != "bot" || len(msgs[0].Meta.Sources) == 0 {
		s.fail(c, kefu.Errorf(op, kefu.NotFound, "message %d of this conversation is not an answer from the knowledge base", body.Seq))
		return
	}
	err = s.KB.Vote(ctx, retrieval.Feedback{SessionID: id, Seq: body.Seq, Source: msgs[0].Meta.Sources[0], Vote: body.Vote, Comment: body.Comment})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// forCustomer is messages as their customer sees them: which model worded an answer and
// what it cited, but not how it was prompted (the agent console and the database keep that).
func forCustomer(ms []dialog.Message) []dialog.Message {
	out := ms
	for i, m := range ms {
		if m.Meta.LLM != nil && len(m.Meta.LLM.Prompt) > 0 {
			if &out[0] == &ms[0] {
				out = slices.Clone(ms)
			}
			out[i].Meta.LLM = &retrieval.GenerationRecord{Model: m.Meta.LLM.Model, Cited: m.Meta.LLM.Cited}
		}
	}
	return out
}

func nonNilMessages(m []dialog.Message) []dialog.Message {
	if m == nil {
		return []dialog.Message{}
	}
	return m
}

// customerWS is the customer's WebSocket: hello, then messages.
func (s *Server) customerWS(c *gin.Context) {
	cn, ok := s.upgrade(c)
	if !ok {
		return
	}
	defer s.untrack(cn)
	var sessionID atomic.Int64
	t := helloTimer(cn, func() bool { return sessionID.Load() != 0 })
	defer t.Stop()
	var unsubscribe func()
	defer func() {
		if unsubscribe != nil {
			unsubscribe()
		}
	}()
	cn.readLoop(context.WithoutCancel(c.Request.Context()), func(ctx context.Context, data []byte) error {
		f, err := decodeFrame(data)
		if err != nil {
			return err
		}
		switch f.Type {
		case "ping":
			cn.sendJSON(gin.H{"type": "pong"})
			return nil
		case "hello":
			if sessionID.Load() != 0 {
				return kefu.Errorf("api.hello", kefu.Conflict, "this connection already said hello")
			}
			sess, err := s.Engine.Authorize(ctx, f.SessionID, f.Token)
			if err != nil {
				return err
			}
			var id identity
			if err := json.Unmarshal(data, &id); err != nil {
				return kefu.Errorf("api.hello", kefu.Invalid, "the profile is not valid: %s", jsonProblem(err))
			}
			if id.Profile != nil {
				p := s.verify(id)
				stored, err := s.Engine.SetProfile(ctx, sess.ID, p)
				if err != nil {
					return err
				}
				if stored {
					sess.Profile = p
				}
			}
			// Subscribe before reading the backlog, so nothing falls between the two; the
			// widget drops a seq it already has.
			unsubscribe = s.Broker.Subscribe(sessionTopic(sess.ID), cn)
			sessionID.Store(sess.ID)
			msgs, err := s.Engine.Messages(ctx, sess.ID, f.Since, 0)
			if err != nil {
				return err
			}
			cn.sendJSON(gin.H{"type": "welcome", "session": sess, "messages": nonNilMessages(forCustomer(msgs))})
			s.sendQueueState(ctx, sess)
			// A customer back after a while to an unfinished task is reminded where it stood.
			if m, err := s.Engine.Resume(ctx, sess.ID); err != nil {
				s.log.WarnContext(ctx, "resume prompt failed", "session_id", sess.ID, "err", err)
			} else if m != nil {
				s.Deliver([]dialog.Message{*m})
			}
			return nil
		case "message":
			id := sessionID.Load()
			if id == 0 {
				return kefu.Errorf("api.message", kefu.Unauthorized, "say hello with your session id and token first")
			}
			if err := s.customerTurn(ctx, cn, id, f); err != nil {
				cn.sendError(err, map[string]any{"client_id": f.ClientID})
			}
			return nil
		default:
			return kefu.Errorf("api.customerWS", kefu.Invalid, "unknown frame type %q", f.Type)
		}
	})
}

func (s *Server) customerTurn(ctx context.Context, cn *conn, sessionID int64, f frame) error {
	ctx, cancel := context.WithTimeout(ctx, s.turnWait)
	defer cancel()
	res, err := s.Engine.Turn(ctx, dialog.Inbound{SessionID: sessionID, ClientID: f.ClientID, Text: f.Text,
		OnDelta: s.deltas(sessionID, f.ClientID)})
	if err != nil {
		return err
	}
	cn.sendJSON(gin.H{"type": "ack", "client_id": f.ClientID, "seq": res.Customer.Seq, "duplicate": res.Duplicate})
	if res.Duplicate {
		return nil
	}
	topic := sessionTopic(sessionID)
	s.Broker.Publish(topic, mustJSON(gin.H{"type": "message", "message": res.Customer}))
	for _, m := range forCustomer(res.Replies) {
		s.Broker.Publish(topic, mustJSON(gin.H{"type": "message", "message": m}))
	}
	if res.Session.State == dialog.StateAgent && res.Session.AgentID != 0 {
		s.Broker.Publish(agentTopic(res.Session.AgentID), mustJSON(gin.H{"type": "message", "message": res.Customer}))
	}
	if res.Escalated {
		s.Queue.Wake()
		s.sendQueueState(ctx, res.Session)
	}
	return nil
}

// Deliver sends messages the server wrote outside a customer's turn (inactivity reminders
// and closes, resume prompts) to the connections of their sessions.
func (s *Server) Deliver(ms []dialog.Message) {
	for _, m := range ms {
		s.Broker.Publish(sessionTopic(m.SessionID), mustJSON(gin.H{"type": "message", "message": m}))
		if m.Meta.Event == "inactivity_closed" {
			s.Broker.Publish(sessionTopic(m.SessionID), mustJSON(gin.H{"type": "state", "state": dialog.StateClosed}))
		}
	}
}

// sendQueueState tells the session's connections where they stand in the queue.
func (s *Server) sendQueueState(ctx context.Context, sess dialog.Session) {
	f := gin.H{"type": "state", "state": sess.State}
	if sess.State == dialog.StateQueued {
		pos, err := s.Queue.Position(ctx, sess.ID)
		if err == nil {
			f["position"] = pos
		}
	}
	s.Broker.Publish(sessionTopic(sess.ID), mustJSON(f))
}
