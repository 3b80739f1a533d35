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

// Escalation reasons a flow can lead to besides its own escalate steps.
const (
	ReasonSlotRetries   = "invalid_answers"  // the customer could not give a valid value
	ReasonWebhookFailed = "webhook_failed"   // a validator failed and nothing else could be done
	ReasonFallback      = "fallback_ladder"  // reserved for custom ladders
	maxStepsPerTurn     = 32                 // a guard: checkGraph already rejects cycles with no exit
	maxSlotValueBytes   = 500                // a text slot longer than this is cut
	flowTitleKey        = "flow_title:%s:%s" // texts key of a flow's title
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
	m, err := addMessage(t.ctx, t.tx, t.s, Message{Role: RoleBot, Body: body, Meta: meta})
	if err == nil {
		t.res.Replies = append(t.res.Replies, m)
	}
	return err
}

func (t *turn) escalate(reason string) error {
	d := &t.s.Dialog
	meta := Meta{Reason: reason, Event: "escalated"}
	if f := d.Flow; f != nil { // the agent sees what the flow had collected
		meta.Flow, meta.FlowVersion, meta.Step, meta.Slots = f.Name, f.Version, f.Step, maps.Clone(f.Slots)
	}
	d.Flow, d.Paused, d.Clarify = nil, nil, nil
	if _, err := t.e.esc.Enqueue(t.ctx, t.tx, handoff.Request{SessionID: t.s.ID, Language: t.lang, Reason: reason}); err != nil {
		return err
	}
	t.s.State, t.s.LowConfidence = StateQueued, 0
	t.res.Escalated = true
	key := "escalate"
	switch reason {
	case ReasonLowConfidence:
		key = "escalate_low_confidence"
	case ReasonSlotRetries:
		key = "escalate_retries"
	}
	return t.say(text(t.lang, key), meta)
}

// knowledge is the knowledge base's answer to the customer's message, looked up once.
func (t *turn) knowledge() (retrieval.Answer, error) {
	if !t.p.searched {
		a, err := t.e.kb.Answer(t.ctx, t.p.body, t.lang)
		if err != nil {
			return retrieval.Answer{}, err
		}
		t.p.answer, t.p.searched = a, true
	}
	return t.p.answer, nil
}

// answerable says whether the knowledge answer is good enough to give.
func (t *turn) answerable(a retrieval.Answer) bool {
	return a.Found && (!t.p.result.OutOfScope || a.Score >= t.e.cfg.OutOfScopeAnswerScore)
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
// customer said earlier in the conversation (carry-over), and the flow runs to its first wait.
func (t *turn) start(fl *Flow) error {
	d := &t.s.Dialog
	if cur := d.Flow; cur != nil && cur.Name != fl.Name {
		d.Paused = cur // a digression into another task: come back to this one after
	}
	f := &FlowState{Name: fl.Name, Version: fl.Version, Slots: map[string]string{}}
	d.Flow = f
	for name, sl := range fl.Slots {
		if !entityType(sl.Type) {
			continue
		}
		if v, ok := t.entity(sl.Type); ok {
			f.Slots[name] = v
		} else if v, ok := d.recall(sl.Type); ok {
			f.Slots[name] = v
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
	for _, e := range t.p.understood.Entities {
		if e.Type == typ {
			return e.Value, true
		}
	}
	return "", false
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
				"session_id": t.s.ID, "flow": fl.Name, "step": st.ID, "language": t.lang, "slots": f.Slots})
			if err != nil {
				t.e.log.WarnContext(t.ctx, "flow webhook failed", "session_id", t.s.ID, "flow", fl.Name, "step", st.ID, "err", err)
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
			return t.escalate(st.Escalate)
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

// finish ends the flow in progress and goes back to a task that was set aside for it.
func (t *turn) finish() error {
	d := &t.s.Dialog
	d.Flow = nil
	t.s.LowConfidence = 0
	if p := d.Paused; p != nil {
		d.Paused = nil
		if fl := t.e.flows[p.Name]; fl != nil {
			d.Flow = p
			return t.prompt(fl, &fl.Steps[fl.index[p.Step]], text(t.lang, "back_to")+flowTitle(fl, t.lang)+"\n")
		}
	}
	return nil
}

// prompt asks the question of a waiting step (a slot or a confirmation), after lead.
func (t *turn) prompt(fl *Flow, st *Step, lead string) error {
	f := t.s.Dialog.Flow
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
	changed, reask, err := t.correct(fl, st)
	if err != nil {
		return true, err
	}
	if reask != "" { // "the other order" with nothing else remembered: ask for it again
		delete(f.Slots, reask)
		for _, s := range fl.Steps {
			if s.Ask == reask {
				f.Step, f.Retries = s.ID, 0
				return true, t.prompt(fl, &s, "")
			}
		}
	}
	if len(changed) > 0 {
		sep := ", "
		if t.lang == "zh" {
			sep = "，"
		}
		if err := t.say(text(t.lang, "updated")+strings.Join(changed, sep), Meta{Event: "slot_corrected"}); err != nil {
			return true, err
		}
		if st.Ask == "" { // a confirmation: ask it again with the new values
			return true, t.prompt(fl, st, "")
		}
		// The message may also answer the waiting question, if that is a typed value; words
		// of the correction must not be read as an enum or free-text answer.
		if entityType(fl.Slots[st.Ask].Type) {
			v, ok, _, err := t.fill(fl, st.Ask)
			if err != nil {
				return true, err
			}
			if ok {
				f.Slots[st.Ask] = v
				return true, t.run(fl, t.after(st))
			}
		}
		return true, t.prompt(fl, st, "")
	}
	if st.Ask != "" {
		v, ok, why, err := t.fill(fl, st.Ask)
		if err != nil {
			return true, err
		}
		if ok {
			f.Slots[st.Ask] = v
			f.Retries = 0
			t.s.LowConfidence = 0
			return true, t.run(fl, t.after(st))
		}
		if handled, err := t.digress(fl, fl.Slots[st.Ask].Type == "text"); handled || err != nil {
			return true, err
		}
		return true, t.retry(fl, st, why)
	}
	// a confirmation
	switch {
	case isYes(body):
		return true, t.run(fl, st.OnYes)
	case isNo(body):
		return true, t.run(fl, st.OnNo)
	}
	if handled, err := t.digress(fl, false); handled || err != nil {
		return true, err
	}
	return true, t.retry(fl, st, text(t.lang, "yes_or_no"))
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
		if d.Paused != nil { // only one task is set aside at a time
			d.Paused = nil
		}
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
		if m := regexp.MustCompile(sl.Pattern).FindStringSubmatch(body); m != nil {
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
	if !ok || sl.Validate == nil {
		return value, ok, "", nil
	}
	resp, err := t.call(sl.Validate, fl, t.s.Dialog.Flow, map[string]any{
		"session_id": t.s.ID, "slot": name, "value": value, "language": t.lang})
	if err != nil { // a validator that is down does not block the customer: accept the value
		t.e.log.WarnContext(t.ctx, "slot validator failed; accepting the value", "session_id", t.s.ID, "slot", name, "err", err)
		return value, true, "", nil
	}
	if !gjson.GetBytes(resp, "valid").Bool() {
		why = gjson.GetBytes(resp, "message_"+t.lang).String()
		if why == "" {
			why = gjson.GetBytes(resp, "message_en").String()
		}
		return "", false, why, nil
	}
	if v := gjson.GetBytes(resp, "value").String(); v != "" {
		value = v
	}
	return value, true, "", nil
}

// correct applies corrections of slots the customer already gave: a new value of a typed slot
// in the message replaces the old one ("不对，订单号是 SO…"); a correction that names a slot
// without a value takes the other remembered value ("no, the other order") or, with none,
// asks again (reask). changed lists "name: value" for each slot that changed.
func (t *turn) correct(fl *Flow, waiting *Step) (changed []string, reask string, err error) {
	f := t.s.Dialog.Flow
	cue := isCorrection(t.p.body)
	names := slices.Sorted(maps.Keys(fl.Slots))
	for _, name := range names {
		sl := fl.Slots[name]
		old, filled := f.Slots[name]
		if !filled || name == waiting.Ask || !entityType(sl.Type) {
			continue
		}
		if v, ok := t.entity(sl.Type); ok && v != old {
			f.Slots[name] = v
			changed = append(changed, sl.title(name, t.lang)+": "+v)
			continue
		}
		if cue && sl.mentioned(t.p.body) {
			if v, ok := t.s.Dialog.other(sl.Type, old); ok {
				f.Slots[name] = v
				changed = append(changed, sl.title(name, t.lang)+": "+v)
			} else {
				return nil, name, nil
			}
		}
	}
	if cue && len(changed) == 0 {
		// "不对，地址写错了": a free-text or enum slot named in a correction is asked again.
		for _, name := range names {
			sl := fl.Slots[name]
			if _, filled := f.Slots[name]; filled && name != waiting.Ask && !entityType(sl.Type) && sl.mentioned(t.p.body) {
				return nil, name, nil
			}
		}
	}
	return changed, "", nil
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
func (t *turn) call(w *Webhook, fl *Flow, f *FlowState, payload map[string]any) ([]byte, error) {
	u := envVar.ReplaceAllStringFunc(w.URL, func(m string) string { return t.e.cfg.Vars[m[2:len(m)-1]] })
	u = templateVar.ReplaceAllStringFunc(u, func(m string) string {
		return url.PathEscape(f.Slots[templateVar.FindStringSubmatch(m)[1]])
	})
	method := strings.ToUpper(w.Method)
	if method == "" {
		method = "POST"
	}
	timeout := w.timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	body, _, err := t.e.hooks.Call(t.ctx, WebhookCall{Method: method, URL: u, Body: payload, Timeout: timeout, Retries: w.Retries})
	if err != nil {
		return nil, err
	}
	if !json.Valid(body) {
		return nil, fmt.Errorf("%s answered with something that is not JSON", fl.Name)
	}
	return body, nil
}
