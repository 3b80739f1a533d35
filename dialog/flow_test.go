package dialog_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kefu-dev/kefu/dialog"
)

var demoIntents = []string{"refund", "human_agent", "greeting", "order_status"}

func TestLoadFlowsDemo(t *testing.T) {
	t.Parallel()
	var labels []string
	b, err := os.ReadFile("../models/intent/labels.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &labels); err != nil {
		t.Fatal(err)
	}
	flows, err := dialog.LoadFlows("flows", labels)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range flows {
		names[f.Name] = f.Version >= 1
	}
	for _, want := range []string{"order_status", "refund_request", "change_address", "cancel_order", "business_hours",
		"greeting", "thanks", "goodbye", "talk_to_person"} {
		if !names[want] {
			t.Errorf("demo flow %q missing or unversioned (have %v)", want, names)
		}
	}
}

// TestLoadFlowsErrors: each broken flow is an error naming the file and the line.
func TestLoadFlowsErrors(t *testing.T) {
	t.Parallel()
	const head = "flow: f\nversion: 1\ntrigger:\n  intents: [refund]\n"
	tests := []struct{ name, yaml, want string }{
		{"syntax", "flow: f\nsteps: [\n", "f.yaml:"},
		{"unknown field", head + "colour: red\nsteps:\n  - {id: a, reply: {en: hi}, end: true}\n", `unknown field "colour"`},
		{"unknown intent", "flow: f\nversion: 1\ntrigger:\n  intents: [refnud]\nsteps:\n  - {id: a, reply: {en: hi}, end: true}\n", `f.yaml:4: unknown intent "refnud"`},
		{"unknown slot", head + "steps:\n  - {id: a, ask: order, next: b}\n  - {id: b, reply: {en: hi}, end: true}\n", `f.yaml:6: step "a" asks for unknown slot "order"`},
		{"unknown step", head + "steps:\n  - {id: a, reply: {en: hi}, next: nowhere}\n", `step "a" goes to unknown step "nowhere"`},
		{"unreachable", head + "steps:\n  - {id: a, reply: {en: hi}, end: true}\n  - {id: b, reply: {en: lost}, end: true}\n", `f.yaml:7: step "b" cannot be reached`},
		{"cycle", head + "steps:\n  - {id: a, reply: {en: one}, next: b}\n  - {id: b, reply: {en: two}, next: a}\n", `step "a" is in a cycle with no exit`},
		{"missing template slot", head + "steps:\n  - {id: a, reply: {en: 'order {{order_number}}'}, end: true}\n", `refers to {{order_number}}, which is no slot`},
		{"two actions", head + "steps:\n  - {id: a, reply: {en: hi}, escalate: x, end: true}\n", "must do exactly one of"},
		{"bad slot type", head + "slots:\n  x: {type: colour, prompt: {en: '?'}}\nsteps:\n  - {id: a, ask: x, next: b}\n  - {id: b, reply: {en: ok}, end: true}\n", `f.yaml:6: slot "x" has type "colour"`},
		{"no version", "flow: f\ntrigger:\n  intents: [refund]\nsteps:\n  - {id: a, reply: {en: hi}, end: true}\n", "needs a version"},
		{"dead end", head + "steps:\n  - {id: a, reply: {en: hi}}\n", "neither ends the flow nor says where to go next"},
		{"unknown switch target", head + "slots:\n  x: {type: text, prompt: {en: '?'}}\nsteps:\n  - id: a\n    ask: x\n    switch: [{slot: x, equals: y, goto: nowhere}]\n    next: b\n  - {id: b, reply: {en: ok}, end: true}\n",
			`f.yaml:10: step "a": case 1 goes to unknown step "nowhere"`},
		{"switch on unknown slot", head + "steps:\n  - id: a\n    reply: {en: hi}\n    switch: [{slot: colour, equals: red, goto: b}]\n    next: b\n  - {id: b, reply: {en: ok}, end: true}\n",
			`case 1 tests unknown slot "colour"`},
		{"webhook without on_error", head + "steps:\n  - {id: a, webhook: {url: 'http://x'}, next: b}\n  - {id: b, reply: {en: ok}, end: true}\n",
			`webhook step "a" needs on_error`},
		{"bad webhook timeout", head + "steps:\n  - {id: a, webhook: {url: 'http://x', timeout: soon}, next: b, on_error: b}\n  - {id: b, reply: {en: ok}, end: true}\n",
			`webhook timeout "soon"`},
		{"enum label for no value", head + "slots:\n  r: {type: enum, values: [a], labels: {b: {en: B}}, prompt: {en: '?'}}\nsteps:\n  - {id: a, ask: r, next: b}\n  - {id: b, reply: {en: ok}, end: true}\n",
			`labels "b", which is not one of its values`},
		{"switch without next", head + "slots:\n  x: {type: text, prompt: {en: '?'}}\nsteps:\n  - id: a\n    ask: x\n    switch: [{slot: x, equals: y, goto: b}]\n  - {id: b, reply: {en: ok}, end: true}\n",
			`step "a" has a switch but no next`},
		{"ask for a slot only a webhook sets", head + "steps:\n  - {id: a, webhook: {url: 'http://x', map: {s: id}}, next: b, on_error: c}\n  - {id: b, ask: s, next: c}\n  - {id: c, reply: {en: ok}, end: true}\n",
			`step "b" asks for unknown slot "s"`},
		{"unknown slot in a webhook url", head + "steps:\n  - {id: a, webhook: {url: 'http://x/{{ordr}}'}, next: b, on_error: b}\n  - {id: b, reply: {en: ok}, end: true}\n",
			`the webhook url refers to {{ordr}}`},
		{"unknown action", head + "steps:\n  - {id: a, shout: hi, end: true}\n", `unknown field "shout"`},
		{"group without escalate", head + "steps:\n  - {id: a, reply: {en: hi}, group: L2, end: true}\n", `step "a" names a group but does not escalate`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "f.yaml"), []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := dialog.LoadFlows(dir, demoIntents)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadFlows(%q) = %v, want an error containing %q", tt.yaml, err, tt.want)
			}
		})
	}
}

// TestLoadFlowsOnErrorEscalate: a webhook step may hand over to a person when its service
// fails, without a step of its own (on_error: escalate); on any other step it is no step.
func TestLoadFlowsOnErrorEscalate(t *testing.T) {
	t.Parallel()
	const head = "flow: f\nversion: 1\ntrigger:\n  intents: [refund]\n"
	tests := []struct{ name, yaml, wantErr string }{
		{"webhook", head + "steps:\n  - {id: a, webhook: {url: 'http://x'}, next: b, on_error: escalate}\n  - {id: b, reply: {en: ok}, end: true}\n", ""},
		{"not a webhook", head + "steps:\n  - {id: a, reply: {en: hi}, next: b, on_error: escalate}\n  - {id: b, reply: {en: ok}, end: true}\n",
			`step "a" goes to unknown step "escalate"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "f.yaml"), []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := dialog.LoadFlows(dir, demoIntents)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("LoadFlows: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("LoadFlows = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func FuzzLoadFlow(f *testing.F) {
	seed, _ := os.ReadFile("flows/refund_request.yaml")
	f.Add(seed)
	f.Add([]byte("flow: f\nsteps: [{id: a, next: a}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "f.yaml"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		flows, err := dialog.LoadFlows(dir, nil)
		if err == nil && len(flows) != 1 {
			t.Fatalf("LoadFlows accepted %d flows from one file", len(flows))
		}
	})
}
