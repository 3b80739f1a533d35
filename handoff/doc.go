// Package handoff is the human side of Kefu: agents and their logins, presence, and the
// routing queue that gives a conversation that needs a person to an online agent with room
// for it.
//
// A conversation enters the queue through Queue.Enqueue, inside the transaction of the turn
// that escalated it. Router.Run claims queued requests with FOR UPDATE SKIP LOCKED and picks the
// least-busy online agent under capacity (locking that agent's row, so capacity holds under
// concurrency), and runs the caller's hook in the same transaction, so the conversation and the
// queue change together or not at all. handoff knows nothing of messages: dialog owns those.
package handoff
