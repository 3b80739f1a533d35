package dialog

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

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
	Description string          `yaml:"description"`
	Trigger     Trigger         `yaml:"trigger"`
	Slots       map[string]Slot `yaml:"slots"`
	Steps       []Step          `yaml:"steps"`

	File string `yaml:"-"` // where it was loaded from
}

// Trigger says which intents start a flow.
type Trigger struct {
	Intents []string `yaml:"intents"`
}

// Text is a reply in several languages, keyed by language code.
type Text map[string]string

// Slot is a value a flow collects from the customer.
type Slot struct {
	Type       string   `yaml:"type"`    // an nlu entity type, or enum, regex, text
	Values     []string `yaml:"values"`  // enum
	Pattern    string   `yaml:"pattern"` // regex
	Prompt     Text     `yaml:"prompt"`
	Invalid    Text     `yaml:"invalid"` // said when a value does not validate
	MaxRetries int      `yaml:"max_retries"`
}

// Step is one state of a flow; it does exactly one thing.
type Step struct {
	ID       string            `yaml:"id"`
	Ask      string            `yaml:"ask"`      // collect a slot
	Reply    Text              `yaml:"reply"`    // say something
	Confirm  Text              `yaml:"confirm"`  // ask yes or no: on_yes, on_no
	Answer   bool              `yaml:"answer"`   // answer from knowledge
	Webhook  *Webhook          `yaml:"webhook"`  // call a service, map its answer into slots
	Set      map[string]string `yaml:"set"`      // set slots
	Escalate string            `yaml:"escalate"` // hand over to a person, with this reason
	Next     string            `yaml:"next"`
	OnYes    string            `yaml:"on_yes"`
	OnNo     string            `yaml:"on_no"`
	OnError  string            `yaml:"on_error"` // webhook failure
	End      bool              `yaml:"end"`
}

// Webhook is an HTTP call a step makes.
type Webhook struct {
	URL     string            `yaml:"url"`
	Timeout string            `yaml:"timeout"`
	Retries int               `yaml:"retries"`
	Map     map[string]string `yaml:"map"` // slot ← JSON path in the response
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
	file, _ := parser.ParseBytes(data, 0)
	line := func(p string) int {
		if file == nil {
			return 0
		}
		yp, err := yaml.PathString(p)
		if err != nil {
			return 0
		}
		n, err := yp.FilterFile(file)
		if err != nil || n == nil {
			return 0
		}
		return n.GetToken().Position.Line
	}
	var errs FlowErrors
	add := func(p, format string, args ...any) {
		errs = append(errs, FlowError{File: path, Line: line(p), Message: fmt.Sprintf(format, args...)})
	}
	checkFlow(&fl, intents, add)
	return &fl, errs
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
			if _, err := regexp.Compile(s.Pattern); s.Pattern == "" || err != nil {
				add(p, "regex slot %q needs a valid pattern: %v", name, err)
			}
		}
		if len(s.Prompt) == 0 {
			add(p, "slot %q has no prompt", name)
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
		if st.Ask != "" && !known[st.Ask] {
			add(p+".ask", "step %q asks for unknown slot %q", st.ID, st.Ask)
		}
		if st.Webhook != nil && st.Webhook.URL == "" {
			add(p+".webhook", "step %q has a webhook without a url", st.ID)
		}
		for field, target := range map[string]string{"next": st.Next, "on_yes": st.OnYes, "on_no": st.OnNo, "on_error": st.OnError} {
			if _, ok := ids[target]; target != "" && !ok {
				add(p+"."+field, "step %q goes to unknown step %q", st.ID, target)
			}
		}
		if len(st.Confirm) > 0 && (st.OnYes == "" || st.OnNo == "") {
			add(p, "confirm step %q needs on_yes and on_no", st.ID)
		}
		if !st.End && st.Escalate == "" && st.Next == "" && st.OnYes == "" {
			add(p, "step %q neither ends the flow nor says where to go next", st.ID)
		}
		for _, t := range []Text{st.Reply, st.Confirm} {
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
		for _, t := range []string{st.Next, st.OnYes, st.OnNo, st.OnError} {
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
	finishes := make([]bool, len(fl.Steps))
	for changed := true; changed; {
		changed = false
		for i, st := range fl.Steps {
			if finishes[i] {
				continue
			}
			ok := st.End || st.Escalate != ""
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
