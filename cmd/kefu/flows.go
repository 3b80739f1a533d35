package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/kefu-dev/kefu/dialog"
)

// flowsCmd is `kefu flows check DIR`: load and check every flow, printing each problem as
// file:line: message. Intents are checked against the model's labels.json.
func flowsCmd(_ context.Context, args []string, log *slog.Logger) error {
	if len(args) == 0 || args[0] != "check" {
		return errors.New("usage: kefu flows check [-model models/intent] DIR")
	}
	fs := flag.NewFlagSet("flows check", flag.ContinueOnError)
	model := fs.String("model", envOr("KEFU_MODEL_DIR", "models/intent"), "model folder whose labels.json lists the known intents")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	dir := fs.Arg(0)
	if dir == "" {
		dir = "dialog/flows"
	}
	var intents []string
	if d, err := findDir(*model); err == nil {
		b, err := os.ReadFile(filepath.Join(d, "labels.json"))
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &intents); err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(d, "labels.json"), err)
		}
	} else {
		log.Warn("no model found: intents are not checked", "model", *model)
	}
	flows, err := dialog.LoadFlows(dir, intents)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return errors.New("flows check failed")
	}
	for _, f := range flows {
		fmt.Printf("ok  %s  %s v%d (%d steps, %d slots)\n", f.File, f.Name, f.Version, len(f.Steps), len(f.Slots))
	}
	return nil
}
