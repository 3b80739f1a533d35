package dialog

import (
	"slices"

	"github.com/kefu-dev/kefu/nlu"
)

// State is where the bot is in a conversation. It is saved with every turn, so a restart or
// another instance carries on where the last turn left off.
type State struct {
	Flow    *FlowState          `json:"flow,omitempty"`    // the task in progress
	Paused  []*FlowState        `json:"paused,omitempty"`  // tasks set aside for another, the last resumed first
	Clarify *Clarify            `json:"clarify,omitempty"` // the bot asked "did you mean A or B?"
	Memory  map[string][]string `json:"memory,omitempty"`  // entity type → values the customer gave, newest last
	// Negative counts the customer's negative messages in a row (Config.NegativeTurns).
	Negative int `json:"negative,omitempty"`
}

// FlowState is one flow in progress.
type FlowState struct {
	Name    string            `json:"name"`
	Version int               `json:"version"`
	Step    string            `json:"step"`    // the step waiting for the customer
	Slots   map[string]string `json:"slots"`   // what has been collected
	Retries int               `json:"retries"` // invalid answers to the waiting step so far
}

// Clarify is a question the bot asked about what the customer meant.
type Clarify struct {
	Options  []string     `json:"options"` // intents, in the order of the buttons
	Text     string       `json:"text"`    // the message that was unclear
	Entities []nlu.Entity `json:"entities,omitempty"`
}

// maxPaused is how many tasks can be set aside at once; the oldest is dropped beyond it.
const maxPaused = 3

// memoryDepth is how many values of each entity type a session remembers.
const memoryDepth = 5

// remember records the entities of a message, for carry-over into later tasks.
func (d *State) remember(es []nlu.Entity) {
	for _, e := range es {
		if d.Memory == nil {
			d.Memory = map[string][]string{}
		}
		vs := slices.DeleteFunc(d.Memory[e.Type], func(v string) bool { return v == e.Value })
		vs = append(vs, e.Value)
		if len(vs) > memoryDepth {
			vs = vs[len(vs)-memoryDepth:]
		}
		d.Memory[e.Type] = vs
	}
}

// recall is the newest remembered value of an entity type.
func (d *State) recall(typ string) (string, bool) {
	vs := d.Memory[typ]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

// other is the newest remembered value of typ that is not current: "the other order".
func (d *State) other(typ, current string) (string, bool) {
	vs := d.Memory[typ]
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i] != current {
			return vs[i], true
		}
	}
	return "", false
}
