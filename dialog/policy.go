package dialog

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kefu-dev/kefu/nlu"
	"github.com/kefu-dev/kefu/retrieval"
)

// Escalation reasons, shown to the agent. Flows may name others (escalate: refund_refused).
const (
	ReasonCustomerAsked     = "customer_asked"     // "转人工", "talk to a human", the human_agent intent, the widget's button
	ReasonLowConfidence     = "low_confidence"     // EscalateAfter turns in a row the bot could not answer (a VIP: VIPEscalateAfter)
	ReasonNegativeSentiment = "negative_sentiment" // one angry message, or NegativeTurns negative ones in a row
	ReasonVIP               = "vip"                // a verified VIP, with VIPDirect: the bot steps aside
	ReasonWebhookFailed     = "webhook_failed"     // a flow's service failed after its retries (on_error: escalate)
)

// plan is what the bot understood of a message, worked out before the session is locked.
type plan struct {
	seq        int64 // the customer's message
	body       string
	understood Meta
	language   string
	result     nlu.Result
	askedHuman bool
	sentiment  Sentiment
	answer     retrieval.Answer // the knowledge answer, once searched
	searched   bool
	draft      *draft // the knowledge answer as an LLM worded it (generate.go)
}

// askHuman matches explicit requests for a person, in the languages the product ships. The
// intent model catches most of them; this catches the short, blunt ones it must never miss.
var askHuman = regexp.MustCompile(`(?i)(转人工|人工客服|人工服务|找人工|要人工|接人工|真人|客服专员|\b(human|real person|live (agent|person|chat)|representative|operator)\b|\b(talk|speak|chat)\s+(to|with)\s+(a|an|the|some)?\s*(person|agent|someone|human|staff)\b|^\s*(agent|person)\s*(please|pls)?\s*[.!]?\s*$)`)

// think runs the intent model and the knowledge search: everything a turn needs that does
// not depend on the session's state, so it runs before the session is locked.
func (e *Engine) think(ctx context.Context, body string) (*plan, error) {
	t0 := time.Now()
	res, err := e.nlu.Understand(ctx, body)
	if err != nil {
		return nil, err
	}
	e.observe("nlu", t0)
	p := &plan{body: body, result: res, language: res.Language, sentiment: ScoreSentiment(body)}
	p.understood = Meta{Intent: res.Intent, Confidence: res.Confidence, OutOfScope: res.OutOfScope,
		Language: res.Language, ModelVersion: res.ModelVersion, Entities: nlu.Extract(body, e.cfg.Now()),
		Sentiment: p.sentiment.Score}
	p.askedHuman = askHuman.MatchString(body) ||
		(res.Intent == "human_agent" && res.Confidence >= e.cfg.MinIntentConfidence)
	// The knowledge search is done here, before the session's lock, when the bot will likely
	// answer from knowledge. A message that starts a task (or is small talk) rarely needs it;
	// if it does after all (a digression in a form), the turn searches inside its
	// transaction (AnswerTx), never through the pool while it holds a connection.
	likely := (e.trigger(res.Intent) == nil || infoQuestion.MatchString(body)) &&
		!(smallTalk[res.Intent] && res.Confidence >= e.cfg.MinIntentConfidence)
	if !p.askedHuman && likely {
		t0 = time.Now()
		if p.answer, err = e.kb.Answer(ctx, body, res.Language); err != nil {
			return nil, err
		}
		e.observe("retrieval", t0)
		p.searched = true
	}
	return p, nil
}

// infoQuestion matches questions that ask how something works rather than ask for it to be
// done: "退款多久到账？", "how long does a refund take?", "can I cancel after shipping?".
var infoQuestion = regexp.MustCompile(`(?i)(多久|多长时间|几天|怎么|如何|能不能|能否|是否|什么时候|为什么|` +
	`可以.*吗|会.*吗|政策|规则|流程|` +
	`\bhow (long|do|does|can|much|many)\b|\bcan (i|you|we)\b|\bwhen (will|does|do|can)\b|\bwhat is\b|\bwhat's\b|\bpolicy\b|\bis it possible\b|\bdo you\b)`)

var smallTalk = map[string]bool{"greeting": true, "thanks": true, "goodbye": true}

// trigger is the flow an intent starts, or nil.
func (e *Engine) trigger(intent string) *Flow {
	if intent == "" {
		return nil
	}
	return e.byIntent[intent]
}

// act decides the bot's replies for a locked session still owned by the bot.
func (e *Engine) act(ctx context.Context, tx pgx.Tx, s *Session, p *plan, res *TurnResult) error {
	t := &turn{e: e, ctx: ctx, tx: tx, s: s, p: p, res: res, lang: s.Language}
	d := &s.Dialog
	d.remember(p.understood.Entities)
	if p.askedHuman {
		return t.escalate(ReasonCustomerAsked)
	}
	if e.cfg.VIPDirect && s.Profile.VIP() {
		return t.escalate(ReasonVIP)
	}
	if t.upset() {
		return t.escalate(ReasonNegativeSentiment)
	}
	if c := d.Clarify; c != nil {
		d.Clarify = nil
		if chosen := e.chosen(c, p.body, t.lang); chosen != "" {
			// Act on the unclear message as if it had been understood as the chosen intent.
			p.result.Intent, p.result.Confidence, p.result.OutOfScope, p.result.Ranking = chosen, 1, false, nil
			p.understood.Entities = append(c.Entities, p.understood.Entities...)
			p.body, p.searched, p.draft = c.Text, false, nil
			if e.trigger(chosen) == nil { // steer the knowledge search towards the chosen topic
				p.body += " " + e.intentTitle(chosen, t.lang)
			}
		}
	}
	if d.Flow != nil {
		if handled, err := t.resume(); handled || err != nil {
			return err
		}
	}
	if opts := e.unclear(p.result); len(opts) > 0 {
		d.Clarify = &Clarify{Options: opts, Text: p.body, Entities: p.understood.Entities}
		quick := make([]string, len(opts))
		for i, o := range opts {
			quick[i] = e.intentTitle(o, t.lang)
		}
		return t.say(fmt.Sprintf(text(t.lang, "clarify"), quick[0], quick[1]), Meta{QuickReplies: quick, Event: "clarify"})
	}
	intent := t.confident()
	if fl := e.trigger(intent); fl != nil {
		s.LowConfidence = 0
		// "退款多久到账？" is about refunds but asks for information, not for a refund: a
		// strong knowledge answer wins, with a button to start the task after all.
		if infoQuestion.MatchString(p.body) {
			a, err := t.knowledge()
			if err != nil {
				return err
			}
			if a.Found && a.Confidence >= e.cfg.OutOfScopeAnswerScore-0.1 {
				return t.sayAnswer(a, Meta{Sources: []retrieval.Source{a.Source}, Score: a.Score,
					QuickReplies: []string{flowTitle(fl, t.lang)}})
			}
		}
		return t.start(fl)
	}
	if smallTalk[intent] {
		s.LowConfidence = 0
		return t.say(text(t.lang, intent), Meta{})
	}
	a, err := t.knowledge()
	if err != nil {
		return err
	}
	if t.answerable(a) {
		s.LowConfidence = 0
		m := Meta{Sources: []retrieval.Source{a.Source}, Score: a.Score}
		if e.cfg.Related != nil {
			m.Related = e.cfg.Related(a.Source.Key, a.Source.Language)
		}
		return t.sayAnswer(a, m)
	}
	return t.fallback(a)
}

// upset counts the customer's negative messages in a row and says whether the sentiment rule
// brings a person in: one message at least AngerScore angry, or NegativeTurns negative ones
// in a row. Any other message ends the run.
func (t *turn) upset() bool {
	cfg, d, score := t.e.cfg, &t.s.Dialog, t.p.sentiment.Score
	if score > -cfg.NegativeScore {
		d.Negative = 0
		return false
	}
	d.Negative++
	if cfg.AngerScore > 0 && score <= -cfg.AngerScore {
		return true
	}
	return cfg.NegativeTurns > 0 && d.Negative >= cfg.NegativeTurns
}

// fallback is the ladder of a message the bot cannot answer: first it asks the customer to
// rephrase, then it offers the nearest knowledge and a person, and at EscalateAfter misses in
// a row (a verified VIP: VIPEscalateAfter) it brings a person in.
func (t *turn) fallback(a retrieval.Answer) error {
	s := t.s
	s.LowConfidence++
	limit := t.e.cfg.EscalateAfter // negative: never
	if vip := t.e.cfg.VIPEscalateAfter; s.Profile.VIP() && vip > 0 && (limit < 0 || vip < limit) {
		limit = vip
	}
	if limit > 0 && s.LowConfidence >= limit {
		return t.escalate(ReasonLowConfidence)
	}
	if s.LowConfidence == 1 && (limit > 2 || limit < 0) {
		return t.say(text(t.lang, "rephrase"), Meta{Score: a.Score, Event: "fallback_rephrase"})
	}
	body := text(t.lang, "not_sure")
	quick := append([]string(nil), a.Related...)
	if len(quick) > 0 {
		body += "\n" + text(t.lang, "related") + "\n- " + strings.Join(quick, "\n- ")
	}
	quick = append(quick, text(t.lang, "ask_human"))
	return t.say(body, Meta{Score: a.Score, QuickReplies: quick, Event: "fallback_offer"})
}

// unclear returns the top two intents when they are too close to choose between and the bot
// can name both: it will ask the customer which one they meant.
func (e *Engine) unclear(r nlu.Result) []string {
	if len(r.Ranking) < 2 || e.cfg.ClarifyMargin <= 0 {
		return nil
	}
	a, b := r.Ranking[0], r.Ranking[1]
	if a.Intent == nlu.OutOfScope || b.Intent == nlu.OutOfScope || a.Confidence-b.Confidence >= e.cfg.ClarifyMargin ||
		a.Confidence+b.Confidence < 0.5 || smallTalk[a.Intent] || smallTalk[b.Intent] {
		return nil
	}
	if e.intentTitle(a.Intent, "en") == "" || e.intentTitle(b.Intent, "en") == "" {
		return nil
	}
	return []string{a.Intent, b.Intent}
}

// chosen reads the customer's answer to a clarification: a button's title, a number, or a
// message whose own intent is one of the options.
func (e *Engine) chosen(c *Clarify, body, lang string) string {
	if i := choice(body, len(c.Options)); i >= 0 {
		return c.Options[i]
	}
	b := strings.ToLower(strings.TrimSpace(body))
	for _, o := range c.Options {
		for _, l := range []string{lang, "en", "zh"} {
			if t := strings.ToLower(e.intentTitle(o, l)); t != "" && b == t {
				return o
			}
		}
	}
	return ""
}

// intentTitle is what the customer sees for an intent: its flow's title, else the built-in
// name, else "" (the bot does not offer what it cannot name).
func (e *Engine) intentTitle(intent, lang string) string {
	if fl := e.byIntent[intent]; fl != nil && len(fl.Title) > 0 {
		return fl.Title.in(lang)
	}
	if t, ok := intentTitles[intent]; ok {
		return t.in(lang)
	}
	return ""
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
	"escalate_negative_sentiment": {
		"zh": "非常抱歉给您带来不好的体验，正在为您转接人工客服，请稍候。",
		"en": "I'm sorry about this. I'm bringing in a person who can sort it out, please wait a moment.",
	},
	"escalate_vip": {
		"zh": "您好，正在为您转接专属人工客服，请稍候。",
		"en": "Hello! I'm connecting you to one of our agents, please wait a moment.",
	},
	"escalate_webhook_failed": {
		"zh": "抱歉，系统暂时无法完成这项操作，正在为您转接人工客服，请稍候。",
		"en": "Sorry, I couldn't complete that just now. I'm bringing in a person to finish it for you, please wait a moment.",
	},
	"escalate_low_confidence": {
		"zh": "抱歉，我没能解答您的问题，正在为您转接人工客服，请稍候。",
		"en": "Sorry I couldn't answer that. I'm connecting you to a human agent, please wait a moment.",
	},
	"not_sure_short": {
		"zh": "抱歉，这个问题我暂时没有找到答案。",
		"en": "Sorry, I couldn't find an answer to that.",
	},
	"rephrase": {
		"zh": "抱歉，我没太明白。能换个说法，或者说得具体一点吗？",
		"en": "Sorry, I didn't quite get that. Could you say it another way, or give a few more details?",
	},
	"clarify": {
		"zh": "请问您是想：%s，还是 %s？",
		"en": "Did you mean: %s, or %s?",
	},
	"back_to": {
		"zh": "我们继续刚才的事情：",
		"en": "Back to where we were: ",
	},
	"yes": {"zh": "确认", "en": "Yes"},
	"no":  {"zh": "取消", "en": "No"},
	"yes_or_no": {
		"zh": "请回复“确认”或“取消”。",
		"en": "Please answer yes or no.",
	},
	"invalid": {
		"zh": "抱歉，这个回答我没法使用。",
		"en": "Sorry, I can't use that answer.",
	},
	"cancelled": {
		"zh": "好的，已取消。还有什么可以帮您？",
		"en": "OK, I've cancelled that. Anything else I can help with?",
	},
	"restarted": {
		"zh": "好的，我们从头开始。",
		"en": "OK, let's start over.",
	},
	"updated": {
		"zh": "好的，已更新 ",
		"en": "OK, updated ",
	},
	"escalate_retries": {
		"zh": "抱歉，我们好像卡住了。正在为您转接人工客服，请稍候。",
		"en": "Sorry, we seem to be stuck. I'm bringing in a human agent, please wait a moment.",
	},
	"reminder": {
		"zh": "您还在吗？如需继续，直接回复即可。",
		"en": "Are you still there? Just reply to carry on.",
	},
	"inactive_closed": {
		"zh": "由于长时间没有收到您的消息，本次会话已结束。如有需要，随时发消息给我。",
		"en": "As I haven't heard from you for a while, I've closed this conversation. Send a message any time to start again.",
	},
	"welcome_back": {
		"zh": "欢迎回来！",
		"en": "Welcome back! ",
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
	"requeued": {
		"zh": "正在为您转接其他客服，请稍候。",
		"en": "We're connecting you to another agent, please hold on.",
	},
	"abandoned": {
		"zh": "已取消排队。如有其他问题，可以继续问我。",
		"en": "You've left the queue. I'm here if you need anything else.",
	},
	"abandoned_gone": {
		"zh": "由于您离开了一段时间，已为您取消排队。如仍需人工服务，请输入“转人工”。",
		"en": "As you were away for a while, you've left the queue. Type \"human\" to ask for a person again.",
	},
	"offline_ticket": {
		"zh": "已收到您的留言，客服会尽快通过邮件回复您。如有其他问题，可以继续问我。",
		"en": "We've got your message and will reply by e-mail as soon as we can. I'm here if you need anything else.",
	},
	"rated": {
		"zh": "感谢您的评价！",
		"en": "Thank you for your feedback!",
	},
	"agent_closed": {
		"zh": "人工客服已结束本次服务，请为本次服务评分。如有其他问题，可以继续问我。",
		"en": "The agent has closed this conversation. How did we do? I'm here if you need anything else.",
	},
}

// intentTitles name the intents that have no flow, for "did you mean …?" buttons.
var intentTitles = map[string]Text{
	"shipping_time":     {"zh": "发货和配送时间", "en": "Delivery times"},
	"shipping_fee":      {"zh": "运费", "en": "Shipping costs"},
	"return_item":       {"zh": "退货", "en": "Returning an item"},
	"exchange_item":     {"zh": "换货", "en": "Exchanging an item"},
	"payment_methods":   {"zh": "支付方式", "en": "Payment methods"},
	"payment_failed":    {"zh": "支付失败", "en": "A failed payment"},
	"invoice":           {"zh": "发票", "en": "Invoices"},
	"coupon":            {"zh": "优惠券", "en": "Coupons"},
	"warranty":          {"zh": "保修", "en": "Warranty"},
	"membership_points": {"zh": "会员积分", "en": "Membership points"},
	"account_login":     {"zh": "账号登录", "en": "Signing in"},
	"product_info":      {"zh": "商品信息", "en": "Product details"},
	"price_adjustment":  {"zh": "价格保护", "en": "Price adjustment"},
	"damaged_item":      {"zh": "商品损坏", "en": "A damaged item"},
	"wrong_item":        {"zh": "发错货", "en": "A wrong item"},
	"complaint":         {"zh": "投诉", "en": "Making a complaint"},
	"modify_order":      {"zh": "修改订单", "en": "Changing an order"},
}

func text(lang, key string) string {
	if t, ok := texts[key][lang]; ok {
		return t
	}
	return texts[key]["en"]
}
