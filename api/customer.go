package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
// bearer token: the customer's own transcript, for clients that poll (a poll while waiting
// for a person keeps the customer's place, as an open connection does).
func (s *Server) customerMessages(c *gin.Context) {
	id, err := pathID(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	sess, err := s.Engine.Authorize(c.Request.Context(), id, bearer(c))
	if err != nil {
		s.fail(c, err)
		return
	}
	if sess.State == dialog.StateQueued { // a client that polls is there as much as one connected
		if err := s.Engine.Present(c.Request.Context(), id); err != nil {
			s.log.WarnContext(c.Request.Context(), "could not record a waiting customer's presence", "session_id", id, "err", err)
		}
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
	// The connection is served on a goroutine of its own and this handler returns: net/http
	// then lets go of the request's buffers and its goroutine's deep stack, about 10 KB that
	// an idle connection would otherwise hold for its life.
	go s.customerConn(context.WithoutCancel(c.Request.Context()), cn)
}

// customerConn serves a customer's connection until it closes.
func (s *Server) customerConn(ctx context.Context, cn *conn) {
	defer s.untrack(cn)
	var sessionID atomic.Int64
	w := &waiter{conn: cn}
	t := helloTimer(cn, func() bool { return sessionID.Load() != 0 })
	defer t.Stop()
	var unsubscribe func()
	defer func() {
		if unsubscribe != nil {
			unsubscribe()
			s.forgetWaiter(w)
		}
	}()
	cn.readLoop(ctx, func(ctx context.Context, data []byte) error {
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
			// Subscribe before reading the backlog, so nothing falls between the two. What the
			// topic brings meanwhile is held and goes out after the welcome, less the messages
			// the backlog already has: a resuming client gets each message once.
			w.setState(sess.State)
			w.hold()
			unsubscribe = s.Broker.Subscribe(sessionTopic(sess.ID), w)
			msgs, err := s.Engine.Messages(ctx, sess.ID, f.Since, 0)
			if err != nil {
				// The database went away in between: this connection may say hello again.
				unsubscribe()
				unsubscribe = nil
				w.release(0)
				return err
			}
			sessionID.Store(sess.ID)
			s.watchWaiter(w, sess.ID)
			floor := f.Since
			if n := len(msgs); n > 0 {
				floor = max(floor, msgs[n-1].Seq)
			}
			cn.sendJSON(gin.H{"type": "welcome", "session": sess, "messages": nonNilMessages(forCustomer(msgs))})
			w.release(floor)
			if sess.State == dialog.StateQueued {
				// The customer is back (or still here): not gone from the queue.
				if err := s.Engine.Present(ctx, sess.ID); err != nil {
					s.log.WarnContext(ctx, "could not record a waiting customer's presence", "session_id", sess.ID, "err", err)
				}
			}
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
		case "typing":
			// Shown to the agent who holds the conversation; nobody else.
			id := sessionID.Load()
			if id == 0 || w.getState() != dialog.StateAgent {
				return nil
			}
			sess, err := s.Engine.Get(ctx, id)
			if err != nil || sess.State != dialog.StateAgent || sess.AgentID == 0 {
				return err
			}
			s.Broker.Publish(agentTopic(sess.AgentID), mustJSON(gin.H{"type": "typing", "role": "customer", "session_id": id, "typing": f.Typing == nil || *f.Typing}))
			return nil
		case "leave_queue":
			id := sessionID.Load()
			if id == 0 {
				return kefu.Errorf("api.leaveQueue", kefu.Unauthorized, "say hello with your session id and token first")
			}
			_, err := s.leaveQueue(ctx, id)
			return err
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
		s.Metrics.Escalated(escalationReason(res.Replies))
		s.sendQueueState(ctx, res.Session)
		s.Queue.Wake()
	}
	return nil
}

// escalationReason is why a turn handed the conversation to the queue, from the reply that
// said so.
func escalationReason(replies []dialog.Message) string {
	for _, m := range replies {
		if m.Meta.Event == "escalated" {
			return m.Meta.Reason
		}
	}
	return ""
}

// Deliver sends messages the server wrote outside a customer's turn (inactivity reminders
// and closes, resume prompts, customers taken out of the queue, offline tickets, thanks for
// a rating) to the connections of their sessions, with the state each leaves the session in.
// It counts the abandonments among them: the sweep's as well as those customers asked for.
func (s *Server) Deliver(ms []dialog.Message) {
	for _, m := range forCustomer(ms) {
		topic := sessionTopic(m.SessionID)
		s.Broker.Publish(topic, mustJSON(gin.H{"type": "message", "message": m}))
		switch m.Meta.Event {
		case "inactivity_closed":
			s.Broker.Publish(topic, mustJSON(gin.H{"type": "state", "state": dialog.StateClosed}))
		case "abandoned":
			s.Metrics.Abandoned(m.Meta.Group)
			s.Broker.Publish(topic, mustJSON(gin.H{"type": "state", "state": dialog.StateBot}))
		case "offline_ticket":
			s.Broker.Publish(topic, mustJSON(gin.H{"type": "state", "state": dialog.StateBot}))
		}
	}
}

// sendQueueState tells the session's connections the state it is in and, while it waits for
// a person, where they stand (queueFrame). A session that has left the queue in the meantime
// gets nothing here: whatever moved it on tells its customer.
func (s *Server) sendQueueState(ctx context.Context, sess dialog.Session) {
	f := gin.H{"type": "state", "state": sess.State}
	if sess.State == dialog.StateQueued {
		qf, queued, err := s.queueFrame(ctx, sess.ID)
		switch {
		case err != nil:
			s.log.WarnContext(ctx, "could not read a customer's place in the queue", "session_id", sess.ID, "err", err)
		case !queued:
			return
		default:
			f = qf
		}
	}
	s.Broker.Publish(sessionTopic(sess.ID), mustJSON(f))
}

// queueFrame is the state frame of a waiting customer: their place (1: next), the estimated
// wait in whole seconds (0: no estimate, as when nobody is online) and the agents online who
// could take the conversation (0: the widget offers to leave a message). queued is false when
// the session is not waiting.
func (s *Server) queueFrame(ctx context.Context, sessionID int64) (f gin.H, queued bool, err error) {
	w, err := s.Queue.Wait(ctx, sessionID)
	if err != nil || w.Position == 0 {
		return nil, false, err
	}
	secs := int64((w.Estimated + time.Second - 1) / time.Second)
	return gin.H{"type": "state", "state": dialog.StateQueued, "position": w.Position, "wait_seconds": secs, "online": w.Online}, true, nil
}

// waiter is a customer's connection as its session's topic sees it: it notes the state in
// the state frames that pass, so that refreshWaiting knows, without asking the database,
// whether the customer waits for a person. While the hello reads the backlog it holds the
// topic's frames, and afterwards it drops the messages the backlog had (seq ≤ floor), so
// that no message reaches a resuming client twice.
type waiter struct {
	*conn
	state atomic.Value // string: the session's state as this connection last heard it

	mu      sync.Mutex
	holding bool
	held    [][]byte
	floor   int64 // the client has every message up to this seq
}

// hold keeps the topic's frames back until release.
func (w *waiter) hold() {
	w.mu.Lock()
	w.holding = true
	w.mu.Unlock()
}

// release queues the held frames, except messages the client has (seq ≤ floor), and lets
// the next ones through.
func (w *waiter) release(floor int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.holding, w.floor = false, floor
	for _, f := range w.held {
		if !w.had(f) {
			w.conn.Enqueue(f)
		}
	}
	w.held = nil
}

// maxHeld is how many frames a hello may hold back before the connection counts as slow.
const maxHeld = 64

// messageTag marks a message frame, as stateTag a state frame.
const messageTag = `"type":"message"`

// had reports whether frame is a message the client already has (under mu).
func (w *waiter) had(frame []byte) bool {
	if w.floor <= 0 || !bytes.Contains(frame, []byte(messageTag)) {
		return false
	}
	var f struct {
		Type    string `json:"type"`
		Message struct {
			Seq int64 `json:"seq"`
		} `json:"message"`
	}
	return json.Unmarshal(frame, &f) == nil && f.Type == "message" && f.Message.Seq > 0 && f.Message.Seq <= w.floor
}

func (w *waiter) setState(st string) { w.state.Store(st) }

func (w *waiter) getState() string {
	st, _ := w.state.Load().(string)
	return st
}

// stateTag marks a state frame: inside a JSON string its quotes would be escaped, so only a
// frame's own keys can match it.
const stateTag = `"type":"state"`

// Enqueue notes a state frame's state and queues the frame; it never blocks.
func (w *waiter) Enqueue(frame []byte) bool {
	if bytes.Contains(frame, []byte(stateTag)) {
		var f struct {
			Type  string `json:"type"`
			State string `json:"state"`
		}
		if json.Unmarshal(frame, &f) == nil && f.Type == "state" && f.State != "" {
			w.setState(f.State)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.holding {
		if len(w.held) >= maxHeld {
			w.conn.shut(closeSlow) // as a full queue would
			return false
		}
		w.held = append(w.held, frame)
		return true
	}
	if w.had(frame) {
		return true // the welcome's backlog had it
	}
	return w.conn.Enqueue(frame)
}

// watchWaiter puts a connection that said hello on the list the refresher goes through;
// forgetWaiter takes it off when it closes. One goroutine refreshes every connection, not
// one per connection: most customers never wait for a person, and those that do cost a
// query or two every waitRefresh.
func (s *Server) watchWaiter(w *waiter, sessionID int64) {
	s.mu.Lock()
	s.waiters[w] = sessionID
	s.mu.Unlock()
	s.refresher.Do(func() { go s.refreshWaiting() })
}

func (s *Server) forgetWaiter(w *waiter) {
	s.mu.Lock()
	delete(s.waiters, w)
	s.mu.Unlock()
}

// refreshWaiting runs for the server's life. Every waitRefresh, each connection whose
// customer waits for a person is told their place and estimated wait again, and the customer
// is recorded as still there (dialog.Engine.Present): one query to read and one to write per
// waiting connection, and nothing for the others. It also notices a conversation that went
// back to waiting without the connection hearing of it, and one that left the queue.
func (s *Server) refreshWaiting() {
	t := time.NewTicker(s.waitRefresh)
	defer t.Stop()
	type watched struct {
		w      *waiter
		id     int64
		before string
	}
	for range t.C {
		var due []watched
		s.mu.Lock()
		for w, id := range s.waiters {
			if st := w.getState(); st == dialog.StateQueued || st == dialog.StateAgent {
				due = append(due, watched{w, id, st})
			}
		}
		s.mu.Unlock()
		for _, d := range due {
			select {
			case <-d.w.done:
				continue
			default:
			}
			s.refreshOnce(d.w, d.id, d.before)
		}
	}
}

func (s *Server) refreshOnce(w *waiter, sessionID int64, before string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.waitRefresh)
	defer cancel()
	f, queued, err := s.queueFrame(ctx, sessionID)
	if err != nil {
		s.log.DebugContext(ctx, "could not refresh a customer's place in the queue", "session_id", sessionID, "err", err)
		return
	}
	if queued {
		if err := s.Engine.Present(ctx, sessionID); err != nil {
			s.log.DebugContext(ctx, "could not record a waiting customer's presence", "session_id", sessionID, "err", err)
		}
		w.setState(dialog.StateQueued)
		w.sendJSON(f)
		return
	}
	if before != dialog.StateQueued {
		return
	}
	// The queue moved on and the frame that said so went to the connection before an older
	// one: say where the conversation is now.
	sess, err := s.Engine.Get(ctx, sessionID)
	if err == nil && sess.State != dialog.StateQueued {
		w.setState(sess.State)
		w.sendJSON(gin.H{"type": "state", "state": sess.State})
	}
}

// customerRoutes are the customer's REST actions on their own session, each authorised by
// the session token as a bearer token (a wrong token and an unknown session are both 404).
func (s *Server) customerRoutes(api *gin.RouterGroup) {
	api.POST("/sessions/:id/abandon", s.customerAbandon)
	api.POST("/sessions/:id/ticket", s.customerTicket)
	api.POST("/sessions/:id/csat", s.customerCSAT)
}

// customerSession is the session of the route's :id when the bearer token is its
// customer's; otherwise it has answered with the error.
func (s *Server) customerSession(c *gin.Context) (dialog.Session, bool) {
	id, err := pathID(c)
	if err != nil {
		s.fail(c, err)
		return dialog.Session{}, false
	}
	sess, err := s.Engine.Authorize(c.Request.Context(), id, bearer(c))
	if err != nil {
		s.fail(c, err)
		return dialog.Session{}, false
	}
	return sess, true
}

// customerAbandon is POST /api/sessions/:id/abandon: the customer stops waiting for a
// person and the bot takes the conversation back → {"message"} (the system message that
// says so, also pushed to the session's connections). 409 when not waiting.
func (s *Server) customerAbandon(c *gin.Context) {
	sess, ok := s.customerSession(c)
	if !ok {
		return
	}
	m, err := s.leaveQueue(c.Request.Context(), sess.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"message": m, "state": dialog.StateBot})
}

// leaveQueue takes a waiting customer out of the queue (counted as abandoned, by Deliver).
func (s *Server) leaveQueue(ctx context.Context, sessionID int64) (dialog.Message, error) {
	m, err := s.Engine.Abandon(ctx, sessionID)
	if err != nil {
		return dialog.Message{}, err
	}
	s.Deliver([]dialog.Message{m})
	return m, nil
}

// customerTicket is POST /api/sessions/:id/ticket {"name","email","text"}: a waiting
// customer leaves a message instead (an offline ticket; the e-mail defaults to the profile's
// and is required, as the answer goes there) → 201 {"ticket": {"id","created_at"},
// "message"}. The conversation leaves the queue (disposition offline_ticket) and goes back
// to the bot. 409 when not waiting; 400 for a bad message or address.
//
// The ticket is stored first, then the request closed: the desk stores tickets outside the
// session's transaction, and should the second step fail (an agent took the conversation in
// between, the database went away), a message kept while the customer still waits is
// better than a message lost.
func (s *Server) customerTicket(c *gin.Context) {
	const op = "api.customerTicket"
	sess, ok := s.customerSession(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	var body struct {
		Name  string `json:"name"`
		Email string `json:"email"`
		Text  string `json:"text"`
	}
	if err := bindJSON(c, &body); err != nil {
		s.fail(c, err)
		return
	}
	if sess.State != dialog.StateQueued {
		s.fail(c, kefu.Errorf(op, kefu.Conflict, "a message can be left while waiting for a person; this conversation is not waiting"))
		return
	}
	if s.Desk == nil {
		s.fail(c, kefu.Errorf(op, kefu.Unavailable, "messages cannot be left on this server"))
		return
	}
	if strings.TrimSpace(body.Name) == "" {
		body.Name = sess.Profile.Name
	}
	if strings.TrimSpace(body.Email) == "" {
		body.Email = sess.Profile.Email
	}
	if strings.TrimSpace(body.Email) == "" {
		s.fail(c, kefu.Errorf(op, kefu.Invalid, "an e-mail address is needed: the answer is sent there"))
		return
	}
	t, err := s.Desk.LeaveMessage(ctx, handoff.Ticket{SessionID: sess.ID, Name: body.Name, Email: body.Email, Body: body.Text,
		Language: sess.Language})
	if err != nil {
		s.fail(c, err)
		return
	}
	out := gin.H{"ticket": gin.H{"id": t.ID, "created_at": t.CreatedAt}}
	m, err := s.Engine.LeaveMessage(ctx, sess.ID)
	switch {
	case err == nil:
		s.Deliver([]dialog.Message{m})
		out["message"] = m
	case kefu.CodeOf(err) == kefu.Conflict: // taken by an agent in between: they can read it
		s.log.InfoContext(ctx, "offline ticket left by a customer no longer waiting", "session_id", sess.ID, "ticket_id", t.ID)
	default:
		s.log.WarnContext(ctx, "offline ticket stored but the request stays queued", "session_id", sess.ID, "ticket_id", t.ID, "err", err)
	}
	c.JSON(http.StatusCreated, out)
}

// customerCSAT is POST /api/sessions/:id/csat {"score": 1–5, "comment"}: the customer rates
// the last conversation a person closed in their session → {"message"} (the thanks, which
// stays in the transcript so the survey is not shown again). 400 for a score outside 1–5,
// 404 when no person has closed a conversation here, 409 when it is already rated.
func (s *Server) customerCSAT(c *gin.Context) {
	sess, ok := s.customerSession(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	var body struct {
		Score   int    `json:"score"`
		Comment string `json:"comment"`
	}
	if err := bindJSON(c, &body); err != nil {
		s.fail(c, err)
		return
	}
	if s.Desk == nil {
		s.fail(c, kefu.Errorf("api.customerCSAT", kefu.Unavailable, "ratings cannot be given on this server"))
		return
	}
	if err := s.Desk.RateService(ctx, sess.ID, body.Score, body.Comment); err != nil {
		s.fail(c, err)
		return
	}
	s.Metrics.Rated(body.Score)
	out := gin.H{"rated": true}
	if m, err := s.Engine.Rated(ctx, sess.ID); err != nil {
		s.log.WarnContext(ctx, "rating stored without its thanks", "session_id", sess.ID, "err", err)
	} else {
		s.Deliver([]dialog.Message{m})
		out["message"] = m
	}
	c.JSON(http.StatusOK, out)
}
