package dialog

import (
	"context"
	"time"

	"github.com/kefu-dev/kefu/retrieval"
)

// Generator words a grounded answer from knowledge passages (an LLM), streaming it to
// onDelta as it is written. retrieval.Generator implements it.
type Generator interface {
	Generate(ctx context.Context, q retrieval.Question, onDelta func(delta string)) (retrieval.Generation, error)
}

var _ Generator = (*retrieval.Generator)(nil)

// draft is a knowledge answer an LLM worded before the session was locked.
type draft struct {
	entryID int64  // the entry that answered: under the lock, the same must answer
	lang    string // the language it was written in: the turn's
	gen     retrieval.Generation
}

// draft asks the Generator for the knowledge answer when the turn will give one: the
// knowledge base found an entry above its threshold, and the session, read without its lock,
// is with the bot and in no task, so act will answer from knowledge. The LLM's latency is
// spent here, before the lock, streaming to in.OnDelta; act then uses the draft if the
// same entry answers (sayAnswer). Below the threshold the LLM is never asked: the bot says it
// is not sure, as without one. A failure or a refusal leaves no draft, and the bot gives the
// entry's own text.
func (e *Engine) draft(ctx context.Context, in Inbound, body string, p *plan) {
	g := e.cfg.Generator
	if g == nil || p == nil || !p.searched || !p.answer.Found || len(p.answer.Evidence) == 0 {
		return
	}
	s, err := e.Get(ctx, in.SessionID)
	if err != nil {
		return // the turn reports it when it locks the session
	}
	if !e.willAnswer(s, p) {
		return
	}
	if in.ClientID != "" { // a resend is answered from what was stored
		var dup bool
		err := e.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM dialog_message
WHERE session_id = $1 AND role = 'customer' AND client_id = $2)`, s.ID, in.ClientID).Scan(&dup)
		if err != nil || dup {
			return
		}
	}
	lang := s.Language // as Turn will set it
	if p.language != "" && (lang == "" || clearLanguage(body)) {
		lang = p.language
	}
	gctx, cancel := context.WithTimeout(ctx, e.cfg.GenerateTimeout)
	defer cancel()
	t0 := time.Now()
	gen, err := g.Generate(gctx, retrieval.Question{Text: body, Language: lang, Evidence: p.answer.Evidence}, in.OnDelta)
	took := time.Since(t0).Round(time.Millisecond)
	e.observe("generate", t0)
	switch {
	case err != nil:
		e.log.WarnContext(ctx, "LLM answer failed: the knowledge base's own text answers", "session_id", s.ID,
			"entry", p.answer.Source.Key, "ms", took.Milliseconds(), "err", err)
	case gen.Refused:
		e.log.InfoContext(ctx, "LLM found no answer in the passages: the knowledge base's own text answers", "session_id", s.ID,
			"entry", p.answer.Source.Key, "ms", took.Milliseconds())
	default:
		p.draft = &draft{entryID: p.answer.Source.EntryID, lang: lang, gen: gen}
	}
}

// willAnswer says whether act, given session s, will answer p from knowledge: it follows
// act's order (a person asked for, a clarification or a task in progress, two intents too
// close, an intent that starts a task, small talk) on a copy of the session.
func (e *Engine) willAnswer(s Session, p *plan) bool {
	if s.State == StateClosed { // the message opens a new conversation
		s.State, s.Dialog = StateBot, State{}
	}
	if s.State != StateBot || s.Dialog.Flow != nil || s.Dialog.Clarify != nil || p.askedHuman {
		return false
	}
	if len(e.unclear(p.result)) > 0 {
		return false
	}
	t := &turn{e: e, p: p}
	a := p.answer
	intent := t.confident()
	if e.trigger(intent) != nil {
		return infoQuestion.MatchString(p.body) && a.Found && a.Confidence >= e.cfg.OutOfScopeAnswerScore-0.1
	}
	return !smallTalk[intent] && t.answerable(a)
}

// sayAnswer gives knowledge answer a with meta: as the LLM worded it when the turn drafted
// it from the same entry in the same language (the cited passages as its sources, the
// prompt in meta.LLM), else the entry's own text.
func (t *turn) sayAnswer(a retrieval.Answer, meta Meta) error {
	d := t.p.draft
	if d == nil || d.entryID != a.Source.EntryID || d.lang != t.lang {
		return t.say(a.Text, meta)
	}
	if len(d.gen.Sources) > 0 {
		meta.Sources = d.gen.Sources
	}
	rec := d.gen.Record
	meta.LLM = &rec
	return t.say(d.gen.Reply, meta)
}
