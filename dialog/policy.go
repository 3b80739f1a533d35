package dialog

import (
	"context"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kefu-dev/kefu/handoff"
	"github.com/kefu-dev/kefu/nlu"
	"github.com/kefu-dev/kefu/retrieval"
)

// Escalation reasons, shown to the agent.
const (
	ReasonCustomerAsked = "customer_asked"
	ReasonLowConfidence = "low_confidence"
)

// plan is what the bot would do with a message, worked out before the session is locked.
type plan struct {
	understood Meta
	language   string
	result     nlu.Result
	answer     retrieval.Answer
	askedHuman bool
}

// askHuman matches explicit requests for a person, in the languages the product ships. The
// intent model catches most of them; this catches the short, blunt ones it must never miss.
var askHuman = regexp.MustCompile(`(?i)(转人工|人工客服|人工服务|找人工|要人工|接人工|真人|客服专员|\b(human|real person|live (agent|person|chat)|representative|operator)\b|\b(talk|speak|chat)\s+(to|with)\s+(a|an|the|some)?\s*(person|agent|someone|human|staff)\b|^\s*(agent|person)\s*(please|pls)?\s*[.!]?\s*$)`)

func (e *Engine) think(ctx context.Context, body string) (*plan, error) {
	res, err := e.nlu.Understand(ctx, body)
	if err != nil {
		return nil, err
	}
	p := &plan{result: res, language: res.Language}
	p.understood = Meta{Intent: res.Intent, Confidence: res.Confidence, OutOfScope: res.OutOfScope,
		Language: res.Language, ModelVersion: res.ModelVersion, Entities: nlu.Extract(body, time.Now())}
	p.askedHuman = askHuman.MatchString(body) ||
		(res.Intent == "human_agent" && res.Confidence >= e.cfg.MinIntentConfidence)
	if !p.askedHuman && !e.smallTalk(res) {
		if p.answer, err = e.kb.Answer(ctx, body, res.Language); err != nil {
			return nil, err
		}
	}
	return p, nil
}

var smallTalk = map[string]bool{"greeting": true, "thanks": true, "goodbye": true}

func (e *Engine) smallTalk(r nlu.Result) bool {
	return smallTalk[r.Intent] && r.Confidence >= e.cfg.MinIntentConfidence
}

// act decides the bot's replies for a locked session still owned by the bot.
func (e *Engine) act(ctx context.Context, tx pgx.Tx, s *Session, p *plan, res *TurnResult) error {
	lang := s.Language
	reply := func(body string, meta Meta) error {
		meta.Language = lang
		m, err := addMessage(ctx, tx, s, Message{Role: RoleBot, Body: body, Meta: meta})
		if err == nil {
			res.Replies = append(res.Replies, m)
		}
		return err
	}
	escalate := func(reason string) error {
		if _, err := e.esc.Enqueue(ctx, tx, handoff.Request{SessionID: s.ID, Language: lang, Reason: reason}); err != nil {
			return err
		}
		s.State, s.LowConfidence = StateQueued, 0
		res.Escalated = true
		key := "escalate"
		if reason == ReasonLowConfidence {
			key = "escalate_low_confidence"
		}
		return reply(text(lang, key), Meta{Reason: reason, Event: "escalated"})
	}
	a := p.answer
	switch {
	case p.askedHuman:
		return escalate(ReasonCustomerAsked)
	case e.smallTalk(p.result):
		s.LowConfidence = 0
		return reply(text(lang, p.result.Intent), Meta{Intent: p.result.Intent})
	case a.Found && (!p.result.OutOfScope || a.Score >= e.cfg.OutOfScopeAnswerScore):
		s.LowConfidence = 0
		return reply(a.Text, Meta{Intent: p.result.Intent, Sources: []retrieval.Source{a.Source}, Score: a.Score})
	}
	s.LowConfidence++
	if s.LowConfidence >= e.cfg.EscalateAfter {
		return escalate(ReasonLowConfidence)
	}
	body := text(lang, "not_sure")
	quick := append([]string(nil), a.Related...)
	if len(quick) > 0 {
		body += "\n" + text(lang, "related") + "\n- " + strings.Join(quick, "\n- ")
	}
	quick = append(quick, text(lang, "ask_human"))
	return reply(body, Meta{Intent: p.result.Intent, Score: a.Score, QuickReplies: quick})
}

// texts are the bot's own lines, per language; English is the fallback.
var texts = map[string]map[string]string{
	"welcome": {
		"zh": "您好！我是智能客服，可以回答发货、退换货、退款、支付、发票等问题。需要人工服务请随时输入“转人工”。\nHi! I'm the shop assistant. Ask me about shipping, returns, refunds, payment or invoices, or type \"human\" to reach a person.",
		"en": "Hi! I'm the shop assistant. Ask me about shipping, returns, refunds, payment or invoices, or type \"human\" to reach a person.\n您好！我是智能客服，需要人工服务请随时输入“转人工”。",
	},
	"greeting": {
		"zh": "您好！请问有什么可以帮您？",
		"en": "Hello! How can I help you today?",
	},
	"thanks": {
		"zh": "不客气！还有其他问题吗？",
		"en": "You're welcome! Is there anything else I can help with?",
	},
	"goodbye": {
		"zh": "感谢您的咨询，祝您生活愉快，再见！",
		"en": "Thanks for contacting us. Have a nice day, goodbye!",
	},
	"escalate": {
		"zh": "好的，正在为您转接人工客服，请稍候。",
		"en": "Sure, I'm connecting you to a human agent. Please wait a moment.",
	},
	"escalate_low_confidence": {
		"zh": "抱歉，我没能解答您的问题，正在为您转接人工客服，请稍候。",
		"en": "Sorry I couldn't answer that. I'm connecting you to a human agent, please wait a moment.",
	},
	"not_sure": {
		"zh": "抱歉，我不太确定您的问题。可以换个说法再问一次，或者输入“转人工”联系人工客服。",
		"en": "Sorry, I'm not sure I understood. Could you rephrase it? You can also type \"human\" to talk to a person.",
	},
	"related": {
		"zh": "您是不是想问：",
		"en": "Did you mean:",
	},
	"ask_human": {
		"zh": "转人工",
		"en": "Talk to a person",
	},
	"agent_joined": {
		"zh": "人工客服已接入，请问有什么可以帮您？",
		"en": "A human agent has joined the conversation.",
	},
	"agent_closed": {
		"zh": "人工客服已结束本次服务。如有其他问题，可以继续问我。",
		"en": "The agent has closed this conversation. I'm here if you need anything else.",
	},
}

func text(lang, key string) string {
	if t, ok := texts[key][lang]; ok {
		return t
	}
	return texts[key]["en"]
}
