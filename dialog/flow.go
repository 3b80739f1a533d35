package dialog

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"
)

// Flow is one multi-turn task written in YAML, one flow a file: the intents that start it,
// the slots it collects and the steps it walks through. Reply texts carry several languages.
//
//	flow: refund_request
//	version: 1
//	trigger: {intents: [refund]}
//	slots:
//	  order_number: {type: order_number, prompt: {zh: 请提供订单号。, en: Your order number?}}
//	steps:
//	  - {id: ask_order, ask: order_number, next: confirm}
//	  - id: confirm
//	    confirm: {zh: "确认为订单 {{order_number}} 退款？", en: "Refund order {{order_number}}?"}
//	    on_yes: done
//	    on_no: done
//	  - {id: done, reply: {zh: 好的。, en: Done.}, end: true}
type Flow struct {
	Name        string          `yaml:"flow"`
	Version     int             `yaml:"version"`
	Title       Text            `yaml:"title"` // what the customer sees when the bot asks "did you mean …?"
	Description string          `yaml:"description"`
	Trigger     Trigger         `yaml:"trigger"`
	Slots       map[string]Slot `yaml:"slots"`
	Steps       []Step          `yaml:"steps"`

	File  string         `yaml:"-"` // where it was loaded from
	index map[string]int // step id → position in Steps
}

// Trigger says which intents start a flow.
type Trigger struct {
	Intents []string `yaml:"intents"`
}

// Text is a reply in several languages, keyed by language code.
type Text map[string]string

// Slot is a value a flow collects from the customer.
type Slot struct {
	Type       string              `yaml:"type"`     // an nlu entity type, or enum, regex, text
	Name       Text                `yaml:"name"`     // how the bot calls it ("order number"), for corrections
	Values     []string            `yaml:"values"`   // enum
	Labels     map[string]Text     `yaml:"labels"`   // enum: what each value is called, per language (also its buttons)
	Synonyms   map[string][]string `yaml:"synonyms"` // enum: other words for a value, any language
	Pattern    string              `yaml:"pattern"`  // regex: the value is group 1 if there is one, else the match
	Validate   *Webhook            `yaml:"validate"` // a service that accepts or rejects a value
	Prompt     Text                `yaml:"prompt"`
	Invalid    Text                `yaml:"invalid"`     // said when a value does not validate
	MaxRetries int                 `yaml:"max_retries"` // invalid answers before a person is brought in (default 2)

	re *regexp.Regexp // Pattern, compiled by LoadFlows
}

// Step is one state of a flow; it does exactly one thing.
type Step struct {
	ID       string            `yaml:"id"`
	Ask      string            `yaml:"ask"`      // collect a slot
	Reply    Text              `yaml:"reply"`    // say something
	Confirm  Text              `yaml:"confirm"`  // ask yes or no: on_yes, on_no
	Answer   bool              `yaml:"answer"`   // answer the customer's last question from knowledge
	Webhook  *Webhook          `yaml:"webhook"`  // call a service, map its answer into slots
	Set      map[string]string `yaml:"set"`      // set slots (values are templates)
	Escalate string            `yaml:"escalate"` // hand over to a person, with this reason
	Group    string            `yaml:"group"`    // with escalate: the skill group to ask (else by language and profile)
	Buttons  []Text            `yaml:"buttons"`  // quick replies offered with a reply
	Card     *Card             `yaml:"card"`     // a card shown with a reply
	Switch   []Case            `yaml:"switch"`   // the first case that holds says where to go; else next
	Next     string            `yaml:"next"`
	OnYes    string            `yaml:"on_yes"`
	OnNo     string            `yaml:"on_no"`
	OnError  string            `yaml:"on_error"` // webhook failure: a step, or escalate (OnErrorEscalate)
	End      bool              `yaml:"end"`
}

// OnErrorEscalate as a webhook step's on_error hands the conversation to a person when the
// service fails after its retries, with the reason webhook_failed, without a step of its own
// (a step with the id "escalate", if the flow has one, is gone to instead).
const OnErrorEscalate = "escalate"

// Case is a condition on a slot or on the intent of the customer's last message.
type Case struct {
	Slot    string   `yaml:"slot"`
	Equals  string   `yaml:"equals"`  // the slot has this value
	In      []string `yaml:"in"`      // the slot has one of these values
	Present *bool    `yaml:"present"` // the slot is (true) or is not (false) filled
	Intent  string   `yaml:"intent"`  // the last message's intent
	Goto    string   `yaml:"goto"`
}

// Card is a rich reply: a title, a body, an optional image and link. Texts are templates.
type Card struct {
	Title Text   `yaml:"title"`
	Body  Text   `yaml:"body"`
	Image string `yaml:"image"`
	URL   string `yaml:"url"`
}

// Webhook is an HTTP call a step makes. The URL may hold {{slot}} templates (path-escaped)
// and ${NAME} variables the engine is configured with (KEFU_URL: the server's own address).
// The request is POST {session_id, flow, step, language, slots}, signed; a validator gets
// {slot, value, language} and answers {valid, value, message_<lang>}.
type Webhook struct {
	URL     string            `yaml:"url"`
	Method  string            `yaml:"method"` // GET or POST (default)
	Timeout string            `yaml:"timeout"`
	Retries int               `yaml:"retries"`
	Map     map[string]string `yaml:"map"` // slot ← gjson path in the response; {{lang}} becomes the language

	timeout time.Duration
}

// slotTypes are the slot types a flow may use: nlu's entity types and three of its own.
var slotTypes = []string{"order_number", "phone", "email", "amount", "date", "quantity", "enum", "regex", "text"}

// FlowError is a problem in a flow file, with the line it is on (0 when unknown).
type FlowError struct {
	File    string
	Line    int
	Message string
}

func (e FlowError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Message)
}

// FlowErrors is every problem found in a set of flows.
type FlowErrors []FlowError

func (es FlowErrors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// LoadFlows reads and checks every *.yaml and *.yml file in dir. intents, when not nil, are
// the intents the model knows: a trigger on any other is an error. The error, if any, is a
// FlowErrors listing every problem with its file and line.
func LoadFlows(dir string, intents []string) ([]*Flow, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.y*ml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, FlowErrors{{File: dir, Message: "no flow files (*.yaml)"}}
	}
	var flows []*Flow
	var errs FlowErrors
	names := map[string]string{}
	for _, f := range files {
		fl, fe := loadFlow(f, intents)
		errs = append(errs, fe...)
		if fl == nil {
			continue
		}
		if prev, dup := names[fl.Name]; dup {
			errs = append(errs, FlowError{File: f, Line: 1, Message: fmt.Sprintf("flow %q is also defined in %s", fl.Name, prev)})
		}
		names[fl.Name] = f
		flows = append(flows, fl)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return flows, nil
}

func loadFlow(path string, intents []string) (*Flow, FlowErrors) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, FlowErrors{{File: path, Message: err.Error()}}
	}
	var fl Flow
	if err := unmarshalFlow(data, &fl); err != nil {
		return nil, FlowErrors{{File: path, Line: errorLine(err), Message: firstLine(yaml.FormatError(err, false, false))}}
	}
	fl.File = path
	line := yamlLines(data)
	var errs FlowErrors
	add := func(p, format string, args ...any) {
		errs = append(errs, FlowError{File: path, Line: line(p), Message: fmt.Sprintf(format, args...)})
	}
	checkFlow(&fl, intents, add)
	return &fl, errs
}

// yamlLines returns a function giving the line of the node at a YAML path ("$.steps[2]") in
// data, 0 when there is none.
func yamlLines(data []byte) func(path string) int {
	file, _ := parser.ParseBytes(data, 0)
	return func(p string) int {
		yp, err := yaml.PathString(p)
		if err != nil || file == nil {
			return 0
		}
		n, err := yp.FilterFile(file)
		if err != nil || n == nil {
			return 0
		}
		return n.GetToken().Position.Line
	}
}

// unmarshalFlow decodes strictly (unknown fields are errors). go-yaml v1.19.2 panics on some
// malformed input (a tagged scalar where a list belongs: FuzzLoadFlow's crasher in
// testdata): that becomes an error here, so a bad file can never stop the server.
func unmarshalFlow(data []byte, fl *Flow) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("not a valid flow file (the YAML decoder failed: %v)", r)
		}
	}()
	return yaml.UnmarshalWithOptions(data, fl, yaml.Strict())
}

var templateVar = regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}`)

// checkFlow reports every problem of fl through add(yamlPath, message).
func checkFlow(fl *Flow, intents []string, add func(path, format string, args ...any)) {
	if fl.Name == "" {
		add("$", "the flow has no name (flow: …)")
	}
	if fl.Version <= 0 {
		add("$", "the flow needs a version (version: 1, raised on every change)")
	}
	if len(fl.Trigger.Intents) == 0 {
		add("$", "the flow has no trigger intents (trigger: {intents: [...]})")
	}
	for i, in := range fl.Trigger.Intents {
		if intents != nil && !slices.Contains(intents, in) {
			add(fmt.Sprintf("$.trigger.intents[%d]", i), "unknown intent %q (the model knows: %s)", in, strings.Join(intents, ", "))
		}
	}
	known := map[string]bool{}
	for name, s := range fl.Slots {
		p := "$.slots." + name
		known[name] = true
		switch {
		case !slices.Contains(slotTypes, s.Type):
			add(p, "slot %q has type %q; want one of %s", name, s.Type, strings.Join(slotTypes, ", "))
		case s.Type == "enum" && len(s.Values) == 0:
			add(p, "enum slot %q lists no values", name)
		case s.Type == "regex":
			re, err := regexp.Compile(s.Pattern)
			if s.Pattern == "" || err != nil {
				add(p, "regex slot %q needs a valid pattern: %v", name, err)
			}
			s.re = re // compiled once, here, for every turn that fills the slot
			fl.Slots[name] = s
		}
		if len(s.Prompt) == 0 {
			add(p, "slot %q has no prompt", name)
		}
		for v := range s.Labels {
			if !slices.Contains(s.Values, v) {
				add(p+".labels", "slot %q labels %q, which is not one of its values", name, v)
			}
		}
		for v := range s.Synonyms {
			if !slices.Contains(s.Values, v) {
				add(p+".synonyms", "slot %q has synonyms for %q, which is not one of its values", name, v)
			}
		}
		checkWebhook(s.Validate, p+".validate", add)
	}
	for name, sl := range fl.Slots {
		if sl.Validate == nil {
			continue
		}
		for _, m := range templateVar.FindAllStringSubmatch(sl.Validate.URL, -1) {
			if _, ok := fl.Slots[m[1]]; !ok {
				add("$.slots."+name+".validate", "slot %q: the validator url refers to {{%s}}, which is no slot of this flow", name, m[1])
			}
		}
	}
	if len(fl.Steps) == 0 {
		add("$", "the flow has no steps")
		return
	}
	ids := map[string]int{}
	for i, st := range fl.Steps {
		p := fmt.Sprintf("$.steps[%d]", i)
		if st.ID == "" {
			add(p, "step %d has no id", i+1)
			continue
		}
		if j, dup := ids[st.ID]; dup {
			add(p, "step id %q is used twice (steps %d and %d)", st.ID, j+1, i+1)
		}
		ids[st.ID] = i
		for _, w := range st.Webhook.mapped() {
			known[w] = true
		}
		for k := range st.Set {
			known[k] = true
		}
	}
	for i, st := range fl.Steps {
		p := fmt.Sprintf("$.steps[%d]", i)
		kinds := 0
		for _, has := range []bool{st.Ask != "", len(st.Reply) > 0, len(st.Confirm) > 0, st.Answer, st.Webhook != nil, len(st.Set) > 0, st.Escalate != ""} {
			if has {
				kinds++
			}
		}
		if kinds != 1 {
			add(p, "step %q must do exactly one of ask, reply, confirm, answer, webhook, set, escalate (it does %d)", st.ID, kinds)
		}
		if _, declared := fl.Slots[st.Ask]; st.Ask != "" && !declared {
			add(p+".ask", "step %q asks for unknown slot %q (a slot it asks for must be declared under slots:, with a prompt)", st.ID, st.Ask)
		}
		if len(st.Switch) > 0 && st.Next == "" && !st.End {
			add(p, "step %q has a switch but no next: where to go when no case holds", st.ID)
		}
		if st.Group != "" && st.Escalate == "" {
			add(p+".group", "step %q names a group but does not escalate (group goes with escalate:)", st.ID)
		}
		for _, w := range []*Webhook{st.Webhook} {
			if w == nil {
				continue
			}
			for _, m := range templateVar.FindAllStringSubmatch(w.URL, -1) {
				if !known[m[1]] {
					add(p+".webhook", "step %q: the webhook url refers to {{%s}}, which is no slot of this flow", st.ID, m[1])
				}
			}
		}
		checkWebhook(st.Webhook, p+".webhook", add)
		if st.Webhook != nil && st.OnError == "" {
			add(p+".webhook", "webhook step %q needs on_error: the step to go to when the service fails, or escalate", st.ID)
		}
		for field, target := range map[string]string{"next": st.Next, "on_yes": st.OnYes, "on_no": st.OnNo, "on_error": st.OnError} {
			if field == "on_error" && target == OnErrorEscalate && st.Webhook != nil {
				continue
			}
			if _, ok := ids[target]; target != "" && !ok {
				add(p+"."+field, "step %q goes to unknown step %q", st.ID, target)
			}
		}
		for j, c := range st.Switch {
			cp := fmt.Sprintf("%s.switch[%d]", p, j)
			if _, ok := ids[c.Goto]; !ok {
				add(cp, "step %q: case %d goes to unknown step %q", st.ID, j+1, c.Goto)
			}
			if c.Slot != "" && !known[c.Slot] {
				add(cp, "step %q: case %d tests unknown slot %q", st.ID, j+1, c.Slot)
			}
			if (c.Slot == "") == (c.Intent == "") {
				add(cp, "step %q: case %d must test either a slot or an intent", st.ID, j+1)
			}
			if c.Intent != "" && intents != nil && !slices.Contains(intents, c.Intent) {
				add(cp, "step %q: case %d tests unknown intent %q", st.ID, j+1, c.Intent)
			}
		}
		if (len(st.Buttons) > 0 || st.Card != nil) && len(st.Reply) == 0 {
			add(p, "step %q has buttons or a card but no reply", st.ID)
		}
		if len(st.Confirm) > 0 && (st.OnYes == "" || st.OnNo == "") {
			add(p, "confirm step %q needs on_yes and on_no", st.ID)
		}
		if !st.End && st.Escalate == "" && st.Next == "" && st.OnYes == "" && len(st.Switch) == 0 {
			add(p, "step %q neither ends the flow nor says where to go next", st.ID)
		}
		texts := append([]Text{st.Reply, st.Confirm}, st.Buttons...)
		if st.Card != nil {
			texts = append(texts, st.Card.Title, st.Card.Body)
		}
		set := Text{}
		for k, v := range st.Set {
			set[k] = v
		}
		texts = append(texts, set)
		for _, t := range texts {
			for lang, s := range t {
				for _, m := range templateVar.FindAllStringSubmatch(s, -1) {
					if !known[m[1]] {
						add(p, "step %q (%s) refers to {{%s}}, which is no slot of this flow", st.ID, lang, m[1])
					}
				}
			}
		}
	}
	checkGraph(fl, ids, add)
	fl.index = ids
}

// checkWebhook reports a webhook without a url, with a bad method or a bad timeout.
func checkWebhook(w *Webhook, p string, add func(path, format string, args ...any)) {
	if w == nil {
		return
	}
	if w.URL == "" {
		add(p, "webhook without a url")
	}
	switch strings.ToUpper(w.Method) {
	case "", "GET", "POST":
	default:
		add(p, "webhook method %q: want GET or POST", w.Method)
	}
	w.timeout = 5 * time.Second
	if w.Timeout != "" {
		d, err := time.ParseDuration(w.Timeout)
		if err != nil || d <= 0 || d > time.Minute {
			add(p, "webhook timeout %q: want a duration up to 1m, like 3s", w.Timeout)
		}
		w.timeout = d
	}
	if w.Retries < 0 || w.Retries > 5 {
		add(p, "webhook retries %d: want 0 to 5", w.Retries)
	}
}

// mapOf is the webhook's slot mapping (nil for no webhook).
func (w *Webhook) mapOf() map[string]string {
	if w == nil {
		return nil
	}
	return w.Map
}

func (w *Webhook) mapped() []string {
	if w == nil {
		return nil
	}
	out := make([]string, 0, len(w.Map))
	for k := range w.Map {
		out = append(out, k)
	}
	return out
}

// checkGraph reports steps that cannot be reached from the first step, and steps from which
// the flow can never end (a cycle with no exit).
func checkGraph(fl *Flow, ids map[string]int, add func(path, format string, args ...any)) {
	succ := make([][]int, len(fl.Steps))
	for i, st := range fl.Steps {
		targets := []string{st.Next, st.OnYes, st.OnNo, st.OnError}
		for _, c := range st.Switch {
			targets = append(targets, c.Goto)
		}
		for _, t := range targets {
			if j, ok := ids[t]; ok && t != "" {
				succ[i] = append(succ[i], j)
			}
		}
	}
	reached := make([]bool, len(fl.Steps))
	var walk func(int)
	walk = func(i int) {
		if reached[i] {
			return
		}
		reached[i] = true
		for _, j := range succ[i] {
			walk(j)
		}
	}
	walk(0)
	// A step can finish when it ends or escalates, or leads to a step that can.
	_, stepNamed := ids[OnErrorEscalate] // on_error: escalate goes there instead
	finishes := make([]bool, len(fl.Steps))
	for changed := true; changed; {
		changed = false
		for i, st := range fl.Steps {
			if finishes[i] {
				continue
			}
			ok := st.End || st.Escalate != "" || (st.Webhook != nil && st.OnError == OnErrorEscalate && !stepNamed)
			for _, j := range succ[i] {
				ok = ok || finishes[j]
			}
			if ok {
				finishes[i], changed = true, true
			}
		}
	}
	for i, st := range fl.Steps {
		p := fmt.Sprintf("$.steps[%d]", i)
		if !reached[i] {
			add(p, "step %q cannot be reached from the first step %q", st.ID, fl.Steps[0].ID)
		} else if !finishes[i] {
			add(p, "step %q is in a cycle with no exit: no end or escalate can be reached from it", st.ID)
		}
	}
}

// errorLine is the line of a go-yaml error, which formats as "[line:column] message".
func errorLine(err error) int {
	msg := yaml.FormatError(err, false, false)
	var l, c int
	if _, e := fmt.Sscanf(msg, "[%d:%d]", &l, &c); e == nil {
		return l
	}
	return 0
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if strings.HasPrefix(s, "[") {
		if i := strings.Index(s, "] "); i >= 0 {
			s = s[i+2:]
		}
	}
	return s
}

// stepIndex is the position of step id in a loaded flow.
func (fl *Flow) stepIndex(id string) (int, bool) {
	if fl == nil {
		return 0, false
	}
	i, ok := fl.index[id]
	return i, ok
}

// MissingVars lists the ${NAME}s that flows' webhook URLs use and vars does not define.
func MissingVars(flows []*Flow, vars map[string]string) []string {
	var missing []string
	check := func(fl *Flow, w *Webhook) {
		if w == nil {
			return
		}
		for _, m := range envVar.FindAllStringSubmatch(w.URL, -1) {
			if _, ok := vars[m[1]]; !ok && !slices.Contains(missing, m[1]) {
				missing = append(missing, m[1])
			}
		}
	}
	for _, fl := range flows {
		for _, st := range fl.Steps {
			check(fl, st.Webhook)
		}
		for _, sl := range fl.Slots {
			check(fl, sl.Validate)
		}
	}
	sort.Strings(missing)
	return missing
}
