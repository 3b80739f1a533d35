// Package dialog owns the conversation: sessions, every message in them, and the engine that
// runs one customer turn.
//
// A turn understands the message (an Understander, nlu), then decides what the bot does: it
// continues the task in progress (a Flow, loaded from YAML: slots, confirmations, webhooks,
// conditions), starts one the intent asks for, answers from knowledge (an Answerer, retrieval),
// asks which of two close intents was meant, climbs the fallback ladder, or escalates to a
// person (an Escalator, handoff). It commits the customer's message, the replies and the new
// session state (the flow, its slots, tasks set aside, remembered entities) in one transaction
// under a row lock on the session: one writer per session, so two messages for one session are
// processed one after the other, once each, and a restart loses nothing. While a person owns
// the session, the bot says nothing. Sweep reminds and closes idle conversations; Resume greets
// a returning customer. With a Generator (an LLM), a knowledge answer is worded from the
// passages found before the lock, streamed to Inbound.OnDelta, and stored with its prompt;
// the entry's own text stays the fallback. Conversation tests (RunConversation) script turns and check replies,
// slots and escalations. dialog never imports api; it declares the interfaces it consumes.
package dialog
