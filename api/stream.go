package api

import (
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// deltaEvery is the least time between two delta frames of one answer.
const deltaEvery = 50 * time.Millisecond

// deltas returns the OnDelta of a customer's turn: the bot's answer, while an LLM writes it,
// goes to the session's connections as {"type":"delta","client_id","text"} frames, text
// being the next piece of the answer to the message client_id. Pieces that come faster than
// deltaEvery are joined, so a fast model cannot fill a connection's queue. The turn's
// message frames follow and replace what the deltas showed.
func (s *Server) deltas(sessionID int64, clientID string) func(string) {
	topic := sessionTopic(sessionID)
	var pending strings.Builder
	var last time.Time
	return func(d string) {
		pending.WriteString(d)
		if time.Since(last) < deltaEvery {
			return
		}
		last = time.Now()
		s.Broker.Publish(topic, mustJSON(gin.H{"type": "delta", "client_id": clientID, "text": pending.String()}))
		pending.Reset()
	}
}
