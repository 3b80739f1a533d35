package dialog

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/tidwall/gjson"

	"github.com/kefu-dev/kefu/handoff"
	"github.com/kefu-dev/kefu/nlu"
	"github.com/kefu-dev/kefu/retrieval"
)

// ReasonSlotRetries is the escalation reason when the customer could not give a valid value.
const ReasonSlotRetries = "invalid_answers"

const (
	maxStepsPerTurn   = 32  // a guard: checkGraph already rejects cycles with no exit
	maxSlotValueBytes = 500 // a free-text slot longer than this is cut
)

// turn is one customer message being acted on, under the session's lock.
type turn struct {
	e    *Engine
	ctx  context.Context
	tx   pgx.Tx
	s    *Session
	p    *plan
	res  *TurnResult
	lang string
	// event marks every reply of the turn that has none of its own ("welcome_back").
	event string
	// lead is said before the next question, once ("there is no order SO…").
	lead string
}

// say adds a bot reply. While a flow runs, the reply records the flow, its version, the step
// and the slots, so each turn can be explained later.
func (t *turn) say(body string, meta Meta) error {
	meta.Language = t.lang
	if f := t.s.Dialog.Flow; f != nil && meta.Flow == "" {
		meta.Flow, meta.FlowVersion, meta.Step = f.Name, f.Version, f.Step
		meta.Slots = maps.Clone(f.Slots)
	}
	if meta.Intent == "" {
		meta.Intent = t.p.result.Intent
	}
	if meta.Event == "" {
		meta.Event = t.event
	}
	// Written with the rest of the turn, in one round trip, when it commits (writeTurn).
	t.s.LastSeq++
	t.res.Replies = append(t.res.Replies, Message{SessionID: t.s.ID, Seq: t.s.LastSeq, Role: RoleBot, Body: body, Meta: meta,
		CreatedAt: t.e.cfg.Now()})
	return nil
}

func (t *turn) escalate(reason string) error { return t.escalateTo(reason, "") }

// escalateTo hands the conversation to a person of the named skill group ("" lets the queue
// choose by language and profile).
func (t *turn) escalateTo(reason, group string) error {
	d := &t.s.Dialog
	meta := Meta{Reason: reason, Event: "escalated"}
	if f := d.Flow; f != nil { // the agent sees what the flow had collected
		meta.Flow, meta.FlowVersion, meta.Step, meta.Slots = f.Name, f.Version, f.Step, maps.Clone(f.Slots)
	}
	d.Flow, d.Paused, d.Clarify, d.Negative = nil, nil, nil, 0
	r := handoff.Request{SessionID: t.s.ID, Language: t.lang, Channel: t.s.Channel, Reason: reason, Profile: t.s.Profile, Group: group}
	if t.s.Profile.VIP() {
		r.Priority = t.e.cfg.VIPPriority
	}
	if _, err := t.e.esc.Enqueue(t.ctx, t.tx, r); err != nil {
		return err
	}
	t.s.State, t.s.LowConfidence = StateQueued, 0
	t.res.Escalated = true
	key := "escalate"
	switch reason {
	case ReasonLowConfidence, ReasonNegativeSentiment, ReasonVIP, ReasonWebhookFailed:
		key = "escalate_" + reason
	case ReasonSlotRetries:
		key = "escalate_retries"
	}
	return t.say(text(t.lang, key), meta)
}

// knowledge is the knowledge base's answer to the customer's message, searched before the
// lock (think). A clarified message is searched again with the chosen topic; that search
// runs inside the transaction so it takes no second pool connection.
func (t *turn) knowledge() (retrieval.Answer, error) {
	if !t.p.searched {
		t0 := time.Now()
		a, err := t.e.kb.AnswerTx(t.ctx, t.tx, t.p.body, t.lang)
		if err != nil {
			return retrieval.Answer{}, err
		}
		t.e.observe("retrieval", t0)
		t.p.answer, t.p.searched = a, true
	}
	return t.p.answer, nil
}

// flowAnswerConfidence is the knowledge confidence a flow's answer step needs.
const flowAnswerConfidence = 0.25

// answerable says whether the knowledge answer is good enough to give.
func (t *turn) answerable(a retrieval.Answer) bool {
	return a.Found && (!t.p.result.OutOfScope || a.Confidence >= t.e.cfg.OutOfScopeAnswerScore)
}

// confident is the intent of the message when the bot may act on it, else "".
func (t *turn) confident() string {
	r := t.p.result
	if r.OutOfScope || r.Confidence < t.e.cfg.MinIntentConfidence {
		return ""
	}
	return r.Intent
}

// ---- starting flows ----

// start begins fl: slots are filled from this message's entities, then from what the
// customer said earlier in the conversation (carry-over), each through the slot's validator,
// and the flow runs to its first wait. A task in progress is set aside, to be resumed after.
func (t *turn) start(fl *Flow) error {
	d := &t.s.Dialog
	if cur := d.Flow; cur != nil && cur.Name != fl.Name {
		d.Paused = append(d.Paused, cur)
		if len(d.Paused) > maxPaused {
			d.Paused = d.Paused[len(d.Paused)-maxPaused:]
		}
	}
	f := &FlowState{Name: fl.Name, Version: fl.Version, Slots: map[string]string{}}
	d.Flow = f
	for _, name := range slices.Sorted(maps.Keys(fl.Slots)) {
		sl := fl.Slots[name]
		if !entityType(sl.Type) {
			continue
		}
		v, said := t.entity(sl.Type)
		if !said {
			var ok bool
			if v, ok = d.recall(sl.Type); !ok {
				continue
			}
		}
		v, ok, why, err := t.accept(fl, name, v)
		if err != nil {
			return err
		}
		if ok {
			f.Slots[name] = v
		} else if said && why != "" {
			t.lead = why + "\n" // "no order SO…": said before the question that follows
		}
	}
	return t.run(fl, fl.Steps[0].ID)
}

func entityType(typ string) bool {
	switch typ {
	case "enum", "regex", "text":
		return false
	}
	return true
}

// entity is the value of the first entity of typ in the message.
func (t *turn) entity(typ string) (string, bool) {
	e, ok := t.entityOf(typ)
	return e.Value, ok
}

// ---- running steps ----

// run walks fl from step id until a step waits for the customer, the flow ends, or it hands
// over to a person.
func (t *turn) run(fl *Flow, id string) error {
	d := &t.s.Dialog
	f := d.Flow
	for range maxStepsPerTurn {
		i, ok := fl.index[id]
		if !ok {
			return fmt.Errorf("flow %s: no step %q", fl.Name, id)
		}
		st := &fl.Steps[i]
		f.Step = id
		next := st.Next
		switch {
		case st.Ask != "":
			if _, filled := f.Slots[st.Ask]; filled {
				break
			}
			f.Retries = 0
			return t.prompt(fl, st, "")
		case len(st.Confirm) > 0:
			f.Retries = 0
			return t.prompt(fl, st, "")
		case len(st.Reply) > 0:
			meta := Meta{}
			for _, b := range st.Buttons {
				meta.QuickReplies = append(meta.QuickReplies, render(b.in(t.lang), fl, f, t.lang))
			}
			if c := st.Card; c != nil {
				meta.Cards = []CardOut{{Title: render(c.Title.in(t.lang), fl, f, t.lang), Body: render(c.Body.in(t.lang), fl, f, t.lang),
					Image: c.Image, URL: c.URL}}
			}
			if err := t.say(render(st.Reply.in(t.lang), fl, f, t.lang), meta); err != nil {
				return err
			}
		case st.Answer:
			a, err := t.knowledge()
			if err != nil {
				return err
			}
			// The flow's author vouches that knowledge covers its topic: the best entry found
			// answers unless the store is plainly unsure (half its usual confidence).
			if !a.Found && len(a.Evidence) > 0 && a.Confidence >= flowAnswerConfidence {
				ev := a.Evidence[0]
				a.Found, a.Text, a.Source, a.Score = true, ev.Text, ev.Source, ev.Score
			}
			if a.Found {
				err = t.say(a.Text, Meta{Sources: []retrieval.Source{a.Source}, Score: a.Score})
			} else {
				err = t.say(text(t.lang, "not_sure_short"), Meta{Score: a.Score})
			}
			if err != nil {
				return err
			}
		case st.Webhook != nil:
			body, err := t.call(st.Webhook, fl, f, map[string]any{
				"session_id": t.s.ID, "flow": fl.Name, "step": st.ID, "language": t.lang, "slots": f.Slots}, st.ID)
			if err != nil {
				t.e.log.WarnContext(t.ctx, "flow webhook failed", "session_id", t.s.ID, "flow", fl.Name, "step", st.ID, "err", err)
				if _, isStep := fl.index[st.OnError]; st.OnError == OnErrorEscalate && !isStep {
					return t.escalate(ReasonWebhookFailed)
				}
				id = st.OnError
				continue
			}
			for slot, path := range st.Webhook.Map {
				if r := gjson.GetBytes(body, strings.ReplaceAll(path, "{{lang}}", t.lang)); r.Exists() {
					f.Slots[slot] = r.String()
				}
			}
		case len(st.Set) > 0:
			for k, v := range st.Set {
				if v = render(v, fl, f, t.lang); v == "" {
					delete(f.Slots, k)
				} else {
					f.Slots[k] = v
				}
			}
		case st.Escalate != "":
			return t.escalateTo(st.Escalate, st.Group)
		}
		if st.End {
			return t.finish()
		}
		for _, c := range st.Switch {
			if c.holds(f, t.p.result.Intent) {
				next = c.Goto
				break
			}
		}
		id = next
	}
	return fmt.Errorf("flow %s: more than %d steps in one turn", fl.Name, maxStepsPerTurn)
}

// finish ends the flow in progress and goes back to the task set aside last, if any.
func (t *turn) finish() error {
	d := &t.s.Dialog
	d.Flow = nil
	t.s.LowConfidence = 0
	for len(d.Paused) > 0 {
		p := d.Paused[len(d.Paused)-1]
		d.Paused = d.Paused[:len(d.Paused)-1]
		fl := t.e.flows[p.Name]
		if fl == nil {
			continue // no longer loaded
		}
		d.Flow = p
		i, ok := fl.stepIndex(p.Step)
		if !ok || !waits(&fl.Steps[i]) { // the flow changed since: start it again
			return t.restartFlow(fl)
		}
		return t.prompt(fl, &fl.Steps[i], text(t.lang, "back_to")+flowTitle(fl, t.lang)+"\n")
	}
	return nil
}

// waits says whether a step waits for the customer.
func waits(st *Step) bool { return st.Ask != "" || len(st.Confirm) > 0 }

// prompt asks the question of a waiting step (a slot or a confirmation), after lead.
func (t *turn) prompt(fl *Flow, st *Step, lead string) error {
	f := t.s.Dialog.Flow
	lead, t.lead = t.lead+lead, ""
	if len(st.Confirm) > 0 {
		return t.say(lead+render(st.Confirm.in(t.lang), fl, f, t.lang),
			Meta{QuickReplies: []string{text(t.lang, "yes"), text(t.lang, "no")}})
	}
	sl := fl.Slots[st.Ask]
	meta := Meta{}
	if sl.Type == "enum" {
		for _, v := range sl.Values {
			meta.QuickReplies = append(meta.QuickReplies, sl.label(v, t.lang))
		}
	}
	return t.say(lead+render(sl.Prompt.in(t.lang), fl, f, t.lang), meta)
}

// ---- a flow that is waiting ----

// resume handles a message while a flow waits for the customer. It returns false when the
// message is not for the flow and the flow let it go (the flow stays, the caller answers).
func (t *turn) resume() (bool, error) {
	d := &t.s.Dialog
	f := d.Flow
	fl := t.e.flows[f.Name]
	if fl == nil || fl.index == nil {
		t.e.log.WarnContext(t.ctx, "dropping a flow that is no longer loaded", "session_id", t.s.ID, "flow", f.Name)
		d.Flow = nil
		return false, nil
	}
	i, ok := fl.index[f.Step]
	if !ok { // the flow changed under the conversation: start it again
		return true, t.restartFlow(fl)
	}
	if f.Version != fl.Version {
		t.e.log.InfoContext(t.ctx, "continuing a conversation on a newer flow version", "session_id", t.s.ID,
			"flow", fl.Name, "from", f.Version, "to", fl.Version)
		f.Version = fl.Version
	}
	st := &fl.Steps[i]
	body := t.p.body
	// An exact answer to the waiting question comes first: "不需要了" is a refund reason
	// before it is a cancel, "yes, change the address" a yes before it is a correction.
	if st.Ask != "" && fl.Slots[st.Ask].Type == "enum" {
		if v, ok := fl.Slots[st.Ask].exact(body); ok {
			return true, t.filled(fl, st, v)
		}
	}
	if len(st.Confirm) > 0 && (isYes(body) || (startsYes.FindString(body) != "" && !butRe.MatchString(body))) {
		return true, t.run(fl, st.OnYes)
	}
	if len(st.Confirm) > 0 && isNo(body) {
		return true, t.run(fl, st.OnNo)
	}
	switch {
	case isCancel(body):
		d.Flow = nil
		if err := t.say(text(t.lang, "cancelled"), Meta{Event: "flow_cancelled", Flow: fl.Name, FlowVersion: fl.Version}); err != nil {
			return true, err
		}
		return true, t.finish()
	case isRestart(body):
		return true, t.restartFlow(fl)
	}
	// Another task asked for plainly ("where is my order X?" while cancelling another) is
	// started, not read as a correction of this one.
	if !isCorrection(body) && startsYes.FindString(body) == "" {
		if other := t.e.trigger(t.confident()); other != nil && other.Name != fl.Name && t.p.result.Confidence >= 0.8 {
			return true, t.start(other)
		}
	}
	changed, reask, why, err := t.correct(fl, st)
	if err != nil {
		return true, err
	}
	if why != "" { // the corrected value was refused: say so and ask the same again
		return true, t.prompt(fl, st, why+"\n")
	}
	if reask != "" { // "the other order" with nothing else remembered: ask for it again
		t.clearMapped(fl)
		delete(f.Slots, reask)
		for j := range fl.Steps {
			if fl.Steps[j].Ask == reask {
				return true, t.run(fl, fl.Steps[j].ID)
			}
		}
	}
	if len(changed) > 0 {
		sep, what := ", ", make([]string, len(changed))
		if t.lang == "zh" {
			sep = "，"
		}
		for j, name := range changed {
			what[j] = fl.Slots[name].title(name, t.lang) + ": " + f.Slots[name]
		}
		if err := t.say(text(t.lang, "updated")+strings.Join(what, sep), Meta{Event: "slot_corrected"}); err != nil {
			return true, err
		}
		// Run again from where the first changed slot was asked: filled questions are
		// skipped, and lookups and switches see the new value (a webhook's answer about the
		// old order is dropped).
		t.clearMapped(fl)
		from := fl.Steps[0].ID
		for _, st := range fl.Steps {
			if slices.Contains(changed, st.Ask) {
				from = st.ID
				break
			}
		}
		return true, t.run(fl, from)
	}
	if st.Ask != "" {
		strict := fl.Slots[st.Ask].Type == "text"
		if strict { // nearly anything is an address: let a clear question or task through first
			if handled, err := t.digress(fl, true); handled || err != nil {
				return true, err
			}
		}
		v, ok, why, err := t.fill(fl, st.Ask)
		if err != nil {
			return true, err
		}
		if ok {
			return true, t.filled(fl, st, v)
		}
		if !strict {
			if handled, err := t.digress(fl, false); handled || err != nil {
				return true, err
			}
		}
		return true, t.retry(fl, st, why)
	}
	// a confirmation that got neither yes nor no
	if handled, err := t.digress(fl, false); handled || err != nil {
		return true, err
	}
	return true, t.retry(fl, st, text(t.lang, "yes_or_no"))
}

// filled stores the answer to the waiting question and goes on.
func (t *turn) filled(fl *Flow, st *Step, v string) error {
	f := t.s.Dialog.Flow
	f.Slots[st.Ask] = v
	f.Retries = 0
	t.s.LowConfidence = 0
	return t.run(fl, t.after(st))
}

// clearMapped forgets the slots webhooks filled: they described values that changed.
func (t *turn) clearMapped(fl *Flow) {
	for _, st := range fl.Steps {
		for slot := range st.Webhook.mapOf() {
			delete(t.s.Dialog.Flow.Slots, slot)
		}
	}
}

// after is where a step goes once its slot is filled.
func (t *turn) after(st *Step) string {
	for _, c := range st.Switch {
		if c.holds(t.s.Dialog.Flow, t.p.result.Intent) {
			return c.Goto
		}
	}
	return st.Next
}

func (t *turn) restartFlow(fl *Flow) error {
	f := t.s.Dialog.Flow
	f.Slots, f.Retries, f.Version = map[string]string{}, 0, fl.Version
	if err := t.say(text(t.lang, "restarted"), Meta{Event: "flow_restarted"}); err != nil {
		return err
	}
	return t.run(fl, fl.Steps[0].ID)
}

// retry re-asks a waiting step after an answer that did not fit, or hands over to a person
// when the customer has tried too often.
func (t *turn) retry(fl *Flow, st *Step, why string) error {
	f := t.s.Dialog.Flow
	f.Retries++
	limit := 2
	if st.Ask != "" && fl.Slots[st.Ask].MaxRetries > 0 {
		limit = fl.Slots[st.Ask].MaxRetries
	}
	if f.Retries > limit {
		return t.escalate(ReasonSlotRetries)
	}
	if why == "" {
		why = fl.Slots[st.Ask].Invalid.in(t.lang)
	}
	if why == "" {
		why = text(t.lang, "invalid")
	}
	return t.prompt(fl, st, why+"\n")
}

// digress answers a message that is not for the waiting step — another task, small talk or a
// knowledge question — and then asks the step's question again. strict is for free-text
// slots, where nearly anything is a value: only a clear question or another task digresses.
func (t *turn) digress(fl *Flow, strict bool) (bool, error) {
	d := &t.s.Dialog
	intent := t.confident()
	question := strings.ContainsAny(t.p.body, "?？吗呢") || strings.HasPrefix(strings.ToLower(t.p.body), "how ")
	if other := t.e.trigger(intent); other != nil && other.Name != fl.Name &&
		(!strict || t.p.result.Confidence >= 0.9 || question) {
		return true, t.start(other)
	}
	if strict && !question {
		return false, nil
	}
	a, err := t.knowledge()
	if err != nil {
		return true, err
	}
	if !t.answerable(a) {
		return false, nil
	}
	f := d.Flow
	if err := t.say(a.Text, Meta{Sources: []retrieval.Source{a.Source}, Score: a.Score, Event: "digression"}); err != nil {
		return true, err
	}
	st := &fl.Steps[fl.index[f.Step]]
	return true, t.prompt(fl, st, text(t.lang, "back_to")+flowTitle(fl, t.lang)+"\n")
}

// ---- slots ----

// bareOrder is an order number typed on its own, when the bot has just asked for one.
var bareOrder = regexp.MustCompile(`(?:^|[^0-9A-Za-z-])([A-Za-z]{0,5}-?\d[0-9A-Za-z]*(?:-[0-9A-Za-z]+)*)(?:$|[^0-9A-Za-z-])`)

// fill reads the value of slot name from the message and validates it. why is what to tell
// the customer when there is no valid value.
func (t *turn) fill(fl *Flow, name string) (value string, ok bool, why string, err error) {
	sl := fl.Slots[name]
	body := t.p.body
	switch sl.Type {
	case "enum":
		value, ok = sl.match(body)
	case "regex":
		if m := sl.re.FindStringSubmatch(body); m != nil {
			value, ok = m[len(m)-1], true
			if len(m) == 1 {
				value = m[0]
			}
		}
	case "text":
		value = strings.TrimSpace(body)
		ok = utf8.RuneCountInString(value) >= 2 && !isYes(value) && !isNo(value)
		if len(value) > maxSlotValueBytes {
			value = value[:maxSlotValueBytes]
			for !utf8.ValidString(value) {
				value = value[:len(value)-1]
			}
		}
	case nlu.EntityOrderNumber:
		if value, ok = t.entity(sl.Type); !ok {
			if m := bareOrder.FindStringSubmatch(body); m != nil && len(m[1]) >= 4 && !isNo(body) {
				value, ok = strings.ToUpper(m[1]), true
			}
		}
	default:
		value, ok = t.entity(sl.Type)
	}
	if !ok {
		return "", false, "", nil
	}
	return t.accept(fl, name, value)
}

// accept runs a value through its slot's validator, if it has one. A validator that cannot be
// reached does not block the customer: the value is accepted and the failure logged.
func (t *turn) accept(fl *Flow, name, value string) (string, bool, string, error) {
	sl := fl.Slots[name]
	if sl.Validate == nil {
		return value, true, "", nil
	}
	f := t.s.Dialog.Flow
	candidate := &FlowState{Name: f.Name, Version: f.Version, Step: f.Step, Slots: maps.Clone(f.Slots)}
	candidate.Slots[name] = value // a validator's URL may name the value it checks
	resp, err := t.call(sl.Validate, fl, candidate, map[string]any{
		"session_id": t.s.ID, "slot": name, "value": value, "language": t.lang}, "validate:"+name)
	if err != nil {
		t.e.log.WarnContext(t.ctx, "slot validator failed; accepting the value", "session_id", t.s.ID, "slot", name, "err", err)
		return value, true, "", nil
	}
	if !gjson.GetBytes(resp, "valid").Bool() {
		why := gjson.GetBytes(resp, "message_"+t.lang).String()
		if why == "" {
			why = gjson.GetBytes(resp, "message_en").String()
		}
		if why == "" {
			why = sl.Invalid.in(t.lang)
		}
		return "", false, why, nil
	}
	if v := gjson.GetBytes(resp, "value").String(); v != "" {
		value = v
	}
	return value, true, "", nil
}

// butRe marks a yes that takes something back ("yes, but the other order").
var butRe = regexp.MustCompile(`(?i)(\bbut\b|\bexcept\b|但是|不过|可是)`)

// startsYes is a message that begins by agreeing: it is not a correction.
var startsYes = regexp.MustCompile(`(?i)^\s*(yes|yeah|yep|sure|ok|okay|是的|是|对|好的|好|确认|没错)\b`)

// correct applies corrections of slots the customer already gave. A correction is a message
// with a correction word ("不对，订单号是 SO…", "no, the other order"), or at a
// confirmation a message that is little more than a new value. A new value of a typed slot
// replaces the old one once its validator accepts it (else why says what was wrong); a
// correction that names a slot without a value takes the other remembered value or, with
// none, asks for it again (reask). changed lists the slots that changed.
func (t *turn) correct(fl *Flow, waiting *Step) (changed []string, reask, why string, err error) {
	f := t.s.Dialog.Flow
	body := t.p.body
	cue := isCorrection(body) && startsYes.FindString(body) == ""
	names := slices.Sorted(maps.Keys(fl.Slots))
	for _, name := range names {
		sl := fl.Slots[name]
		old, filled := f.Slots[name]
		if !filled || name == waiting.Ask || !entityType(sl.Type) {
			continue
		}
		if e, ok := t.entityOf(sl.Type); ok && e.Value != old {
			bare := len(strings.TrimSpace(body)) <= len(e.Text)+6
			if !cue && !(bare && len(waiting.Confirm) > 0) {
				continue
			}
			v, ok, why, err := t.accept(fl, name, e.Value)
			if err != nil || !ok {
				return nil, "", why, err
			}
			f.Slots[name] = v
			changed = append(changed, name)
			continue
		}
		if cue && sl.mentioned(body) {
			if v, ok := t.s.Dialog.other(sl.Type, old); ok {
				if v, ok, _, err = t.accept(fl, name, v); err != nil {
					return nil, "", "", err
				}
				if ok {
					f.Slots[name] = v
					changed = append(changed, name)
					continue
				}
			}
			return nil, name, "", nil
		}
	}
	if cue && len(changed) == 0 {
		// "不对，地址写错了": a free-text or enum slot named in a correction is asked again.
		for _, name := range names {
			sl := fl.Slots[name]
			if _, filled := f.Slots[name]; filled && name != waiting.Ask && !entityType(sl.Type) && sl.mentioned(body) {
				return nil, name, "", nil
			}
		}
	}
	return changed, "", "", nil
}

// entityOf is the first entity of typ in the message.
func (t *turn) entityOf(typ string) (nlu.Entity, bool) {
	for _, e := range t.p.understood.Entities {
		if e.Type == typ {
			return e, true
		}
	}
	return nlu.Entity{}, false
}

// exact finds the enum value a whole message names: a value, a label or a synonym and
// nothing else (a button press, or a typed "不需要了").
func (sl Slot) exact(body string) (string, bool) {
	b := normalizeShort(body)
	for _, v := range sl.Values {
		words := append([]string{v, strings.ReplaceAll(v, "_", " ")}, sl.Synonyms[v]...)
		for _, l := range sl.Labels[v] {
			words = append(words, l)
		}
		for _, w := range words {
			if strings.EqualFold(b, normalizeShort(w)) {
				return v, true
			}
		}
	}
	return "", false
}

// match finds the enum value a message names: the value itself, its labels or a synonym,
// or a number counting from 1.
func (sl Slot) match(body string) (string, bool) {
	b := strings.ToLower(normalizeShort(body))
	if i := choice(b, len(sl.Values)); i >= 0 && len(b) <= 3 {
		return sl.Values[i], true
	}
	found := ""
	for _, v := range sl.Values {
		words := append([]string{v, strings.ReplaceAll(v, "_", " ")}, sl.Synonyms[v]...)
		for _, l := range sl.Labels[v] {
			words = append(words, l)
		}
		for _, w := range words {
			if w = strings.ToLower(w); w != "" && strings.Contains(b, w) {
				if found != "" && found != v {
					return "", false // two values named: ask again rather than guess
				}
				found = v
			}
		}
	}
	return found, found != ""
}

// label is what an enum value is called in lang.
func (sl Slot) label(v, lang string) string {
	if l := sl.Labels[v].in(lang); l != "" {
		return l
	}
	return v
}

// title is what the slot is called in lang.
func (sl Slot) title(name, lang string) string {
	if n := sl.Name.in(lang); n != "" {
		return n
	}
	return strings.ReplaceAll(name, "_", " ")
}

// mentioned says whether a message names the slot in any of its languages: its whole name,
// a word of four letters or more of it ("order"), or the first two characters of a Chinese
// name ("订单").
func (sl Slot) mentioned(body string) bool {
	b := strings.ToLower(body)
	for _, n := range sl.Name {
		n = strings.ToLower(n)
		if n == "" {
			continue
		}
		if strings.Contains(b, n) {
			return true
		}
		for _, w := range strings.Fields(n) {
			if len(w) >= 4 && strings.Contains(b, w) {
				return true
			}
		}
		if r := []rune(n); len(r) >= 2 && r[0] > unicode.MaxLatin1 && strings.Contains(b, string(r[:2])) {
			return true
		}
	}
	return false
}

func (c Case) holds(f *FlowState, intent string) bool {
	if c.Intent != "" {
		return c.Intent == intent
	}
	v, filled := f.Slots[c.Slot]
	switch {
	case c.Present != nil:
		return filled == *c.Present
	case len(c.In) > 0:
		return slices.Contains(c.In, v)
	default:
		return filled && v == c.Equals
	}
}

// in is the text in lang, else English, else Chinese, else any.
func (t Text) in(lang string) string {
	for _, l := range []string{lang, "en", "zh"} {
		if s, ok := t[l]; ok {
			return s
		}
	}
	for _, s := range t {
		return s
	}
	return ""
}

// render fills {{slot}} templates: an enum slot shows its label, and slot_<lang> wins over
// slot so a service can answer in several languages.
func render(tmpl string, fl *Flow, f *FlowState, lang string) string {
	if !strings.Contains(tmpl, "{{") {
		return tmpl
	}
	return templateVar.ReplaceAllStringFunc(tmpl, func(m string) string {
		name := templateVar.FindStringSubmatch(m)[1]
		if v, ok := f.Slots[name+"_"+lang]; ok {
			return v
		}
		v := f.Slots[name]
		if sl, ok := fl.Slots[name]; ok && sl.Type == "enum" {
			return sl.label(v, lang)
		}
		return v
	})
}

func flowTitle(fl *Flow, lang string) string {
	if s := fl.Title.in(lang); s != "" {
		return s
	}
	return strings.ReplaceAll(fl.Name, "_", " ")
}

// ---- webhooks ----

var envVar = regexp.MustCompile(`\$\{([A-Z_][A-Z0-9_]*)\}`)

// call makes a webhook call: ${NAME} in the URL comes from the engine's variables and {{slot}}
// from the flow's slots, path-escaped.
//
// The idempotency key is the session, the customer's message and the step (what): a turn
// rolled back after the call and sent again makes the same call with the same key, so the
// service does the work once.
func (t *turn) call(w *Webhook, fl *Flow, f *FlowState, payload map[string]any, what string) ([]byte, error) {
	u := envVar.ReplaceAllStringFunc(w.URL, func(m string) string { return t.e.cfg.Vars[m[2:len(m)-1]] })
	// A slot's value is the customer's text: escaped for where it goes, path or query, and
	// never "." or "..", which would move along the path.
	path, query, hasQuery := strings.Cut(u, "?")
	var bad error
	fillIn := func(escape func(string) string) func(string) string {
		return func(m string) string {
			v := f.Slots[templateVar.FindStringSubmatch(m)[1]]
			if v == "." || v == ".." {
				bad = fmt.Errorf("%s: a slot value %q cannot go into a url", fl.Name, v)
			}
			return escape(v)
		}
	}
	u = templateVar.ReplaceAllStringFunc(path, fillIn(url.PathEscape))
	if hasQuery {
		u += "?" + templateVar.ReplaceAllStringFunc(query, fillIn(url.QueryEscape))
	}
	if bad != nil {
		return nil, bad
	}
	method := strings.ToUpper(w.Method)
	if method == "" {
		method = "POST"
	}
	timeout := w.timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	key := fmt.Sprintf("kefu-%d-%d-%s-%s", t.s.ID, t.p.seq, fl.Name, what)
	body, _, err := t.e.hooks.Call(t.ctx, WebhookCall{Method: method, URL: u, Body: payload, Timeout: timeout,
		Retries: w.Retries, IdempotencyKey: key})
	if err != nil {
		return nil, err
	}
	if !json.Valid(body) {
		return nil, fmt.Errorf("%s answered with something that is not JSON", fl.Name)
	}
	return body, nil
}
