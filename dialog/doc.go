// Package dialog owns the conversation: sessions, every message in them, and the engine that
// runs one customer turn.
//
// A turn understands the message (an Understander, nlu), decides what the bot does, answers
// from knowledge (an Answerer, retrieval) or escalates to a person (an Escalator, handoff), and
// commits the customer's message, the replies and the new session state in one transaction
// under a row lock on the session: one writer per session, so two messages for one session are
// processed in order, once. While a person owns the session, the bot says nothing. dialog never
// imports api; it declares the interfaces it consumes.
package dialog
