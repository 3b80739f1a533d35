package dialog

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/kefu-dev/kefu/handoff"
)

// Conversation is a scripted conversation with assertions on what the bot does, one of the
// tests of a conversation test file:
//
//   - test: refund in Chinese
//     turns:
//   - user: 我要退款
//     bot: 订单号            # every reply of the turn, together, contains these
//     flow: refund_request  # the flow in progress after the turn ("" for none)
//   - user: 订单号 SO20261127001
//     slots: {order_number: SO20261127001}
//   - idle: 4m              # the customer goes quiet: the clock moves, the sweeper runs
//     bot: 还在吗
//
// A test may give the customer a profile, as the embedding site would (verified: true as if
// signed): profile: {name: 李雷, tier: vip, verified: true}.
type Conversation struct {
	Name    string           `yaml:"test"`
	Profile *handoff.Profile `yaml:"profile"`
	Turns   []TestTurn       `yaml:"turns"`

	File string `yaml:"-"`
	Line int    `yaml:"-"`
}

// TestTurn is one step of a Conversation: something the customer does (user, idle or
// resume) and what must hold afterwards. Unset expectations are not checked.
type TestTurn struct {
	User   string `yaml:"user"`   // the customer says this
	Idle   string `yaml:"idle"`   // or: this much time passes and the sweeper runs
	Resume bool   `yaml:"resume"` // or: the customer comes back (reconnects)

	Bot        Strings           `yaml:"bot"`         // the turn's replies contain each of these
	NotBot     Strings           `yaml:"not_bot"`     // and none of these
	Silent     bool              `yaml:"silent"`      // the bot says nothing
	Buttons    Strings           `yaml:"buttons"`     // quick replies offered include these
	Cards      int               `yaml:"cards"`       // at least this many cards
	Flow       *string           `yaml:"flow"`        // the flow in progress after the turn, "" for none
	Step       string            `yaml:"step"`        // the step it waits at
	Slots      map[string]string `yaml:"slots"`       // slots of the flow in progress (or of the one that just ended), "" for unset
	Escalated  *bool             `yaml:"escalated"`   // the turn handed the conversation to a person
	Reason     string            `yaml:"reason"`      // with this reason
	Intent     string            `yaml:"intent"`      // what the customer's message was understood as
	Event      string            `yaml:"event"`       // some reply carries this event (digression, clarify, …)
	State      string            `yaml:"state"`       // the session's state after the turn
	Sources    *bool             `yaml:"sources"`     // a reply cites knowledge
	FlowAnswer string            `yaml:"flow_answer"` // the flow that wrote the replies (its version is recorded)

	line int
}

// Strings is one string or a list of them in YAML.
type Strings []string

// UnmarshalYAML accepts a scalar or a sequence.
func (s *Strings) UnmarshalYAML(b []byte) error {
	var one string
	if err := yaml.Unmarshal(b, &one); err == nil {
		*s = Strings{one}
		return nil
	}
	var many []string
	if err := yaml.Unmarshal(b, &many); err != nil {
		return err
	}
	*s = many
	return nil
}

// LoadConversations reads every *.yaml file in dir: each is a list of Conversations. Errors
// name the file and line.
func LoadConversations(dir string) ([]*Conversation, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.y*ml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, FlowErrors{{File: dir, Message: "no conversation test files (*.yaml)"}}
	}
	var out []*Conversation
	var errs FlowErrors
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var cs []*Conversation
		if err := yaml.UnmarshalWithOptions(data, &cs, yaml.Strict()); err != nil {
			errs = append(errs, FlowError{File: f, Line: errorLine(err), Message: firstLine(yaml.FormatError(err, false, false))})
			continue
		}
		line := yamlLines(data)
		for i, c := range cs {
			c.File, c.Line = f, line(fmt.Sprintf("$[%d]", i))
			if c.Name == "" || len(c.Turns) == 0 {
				errs = append(errs, FlowError{File: f, Line: c.Line, Message: "a test needs a name (test:) and turns"})
			}
			for j := range c.Turns {
				tt := &c.Turns[j]
				tt.line = line(fmt.Sprintf("$[%d].turns[%d]", i, j))
				acts := 0
				for _, has := range []bool{tt.User != "", tt.Idle != "", tt.Resume} {
					if has {
						acts++
					}
				}
				if acts != 1 {
					errs = append(errs, FlowError{File: f, Line: tt.line, Message: "a turn needs exactly one of user, idle, resume"})
				}
				if tt.Idle != "" {
					if _, err := time.ParseDuration(tt.Idle); err != nil {
						errs = append(errs, FlowError{File: f, Line: tt.line, Message: fmt.Sprintf("idle %q is not a duration", tt.Idle)})
					}
				}
			}
			out = append(out, c)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

// Clock is a clock that conversation tests move by hand. Safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// ConversationResult is how one Conversation went.
type ConversationResult struct {
	Name     string
	File     string
	Line     int
	Failures []string // each: where, what was wanted, what the bot did
	Err      error    // the conversation could not run
}

// Passed says whether every expectation held.
func (r ConversationResult) Passed() bool { return r.Err == nil && len(r.Failures) == 0 }

// RunConversation plays c in a new session. The engine's clock must be clock (Config.Now):
// idle turns move it and run Sweep. Run conversations one at a time on one engine.
func (e *Engine) RunConversation(ctx context.Context, c *Conversation, clock *Clock) ConversationResult {
	r := ConversationResult{Name: c.Name, File: c.File, Line: c.Line}
	n := NewSession{Channel: "test"}
	if c.Profile != nil {
		n.Profile = *c.Profile
	}
	s, _, err := e.StartSession(ctx, n)
	if err != nil {
		r.Err = err
		return r
	}
	for i, tt := range c.Turns {
		var got TurnResult
		switch {
		case tt.User != "":
			clock.Advance(time.Second)
			got, err = e.Turn(ctx, Inbound{SessionID: s.ID, Text: tt.User})
		case tt.Idle != "":
			d, _ := time.ParseDuration(tt.Idle)
			clock.Advance(d)
			var ms []Message
			ms, err = e.Sweep(ctx)
			for _, m := range ms {
				if m.SessionID == s.ID {
					got.Replies = append(got.Replies, m)
				}
			}
		case tt.Resume:
			var m *Message
			if m, err = e.Resume(ctx, s.ID); m != nil {
				got.Replies = append(got.Replies, *m)
			}
		}
		if err != nil {
			r.Err = fmt.Errorf("%s:%d: turn %d: %w", c.File, tt.line, i+1, err)
			return r
		}
		if got.Session, err = e.Get(ctx, s.ID); err != nil {
			r.Err = err
			return r
		}
		fails := tt.check(got)
		if len(fails) > 0 {
			fails = append(fails, fmt.Sprintf("the bot said %q", bodies(got.Replies)))
		}
		for _, f := range fails {
			r.Failures = append(r.Failures, fmt.Sprintf("%s:%d: turn %d (%s): %s", c.File, tt.line, i+1, tt.what(), f))
		}
		if len(r.Failures) > 0 {
			break // later turns would only repeat the difference
		}
	}
	return r
}

func (tt TestTurn) what() string {
	switch {
	case tt.User != "":
		return fmt.Sprintf("user: %q", tt.User)
	case tt.Idle != "":
		return "idle " + tt.Idle
	}
	return "resume"
}

// check compares a turn's outcome with the expectations, as "want …, got …" lines.
func (tt TestTurn) check(got TurnResult) []string {
	var fails []string
	fail := func(format string, args ...any) { fails = append(fails, fmt.Sprintf(format, args...)) }
	var bodies []string
	var buttons []string
	var cards int
	events := map[string]bool{}
	sources, escalated, reason, flowAnswer := false, got.Escalated, "", ""
	var lastSlots map[string]string
	for _, m := range got.Replies {
		bodies = append(bodies, m.Body)
		buttons = append(buttons, m.Meta.QuickReplies...)
		cards += len(m.Meta.Cards)
		events[m.Meta.Event] = true
		sources = sources || len(m.Meta.Sources) > 0
		if m.Meta.Reason != "" {
			reason = m.Meta.Reason
		}
		if m.Meta.Flow != "" {
			flowAnswer, lastSlots = m.Meta.Flow, m.Meta.Slots
		}
	}
	all := strings.Join(bodies, "\n")
	shown := fmt.Sprintf("%q", bodies)
	for _, w := range tt.Bot {
		if !strings.Contains(all, w) {
			fail("want a reply containing %q, got %s", w, shown)
		}
	}
	for _, w := range tt.NotBot {
		if strings.Contains(all, w) {
			fail("want no reply containing %q, got %s", w, shown)
		}
	}
	if tt.Silent && len(bodies) > 0 {
		fail("want silence, got %s", shown)
	}
	if !tt.Silent && tt.User != "" && len(bodies) == 0 && got.Session.State == StateBot {
		fail("the bot did not answer")
	}
	for _, w := range tt.Buttons {
		if !slices.Contains(buttons, w) {
			fail("want a button %q, got %q", w, buttons)
		}
	}
	if cards < tt.Cards {
		fail("want %d card(s), got %d", tt.Cards, cards)
	}
	d := got.Session.Dialog
	flow, step := "", ""
	slots := lastSlots
	if d.Flow != nil {
		flow, step, slots = d.Flow.Name, d.Flow.Step, d.Flow.Slots
	}
	if tt.Flow != nil && *tt.Flow != flow {
		fail("want flow %q in progress, got %q (step %q)", *tt.Flow, flow, step)
	}
	if tt.Step != "" && tt.Step != step {
		fail("want the flow waiting at step %q, got %q", tt.Step, step)
	}
	for _, k := range slices.Sorted(maps.Keys(tt.Slots)) {
		if want := tt.Slots[k]; slots[k] != want {
			fail("want slot %s = %q, got %q (slots %v)", k, want, slots[k], slots)
		}
	}
	if tt.Escalated != nil && *tt.Escalated != escalated {
		fail("want escalated %v, got %v (state %s)", *tt.Escalated, escalated, got.Session.State)
	}
	if tt.Reason != "" && tt.Reason != reason {
		fail("want escalation reason %q, got %q", tt.Reason, reason)
	}
	if tt.Intent != "" && tt.Intent != got.Customer.Meta.Intent {
		fail("want the message understood as %q, got %q (%.2f)", tt.Intent, got.Customer.Meta.Intent, got.Customer.Meta.Confidence)
	}
	if tt.Event != "" && !events[tt.Event] {
		fail("want a reply with event %q, got %v", tt.Event, slices.Sorted(maps.Keys(events)))
	}
	if tt.State != "" && tt.State != got.Session.State {
		fail("want session state %q, got %q", tt.State, got.Session.State)
	}
	if tt.Sources != nil && *tt.Sources != sources {
		fail("want knowledge cited %v, got %v", *tt.Sources, sources)
	}
	if tt.FlowAnswer != "" && tt.FlowAnswer != flowAnswer {
		fail("want the replies written by flow %q, got %q", tt.FlowAnswer, flowAnswer)
	}
	return fails
}

func bodies(ms []Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Body
	}
	return out
}
