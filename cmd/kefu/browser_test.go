package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// needBrowser fails the test when node, Chromium or playwright-core is missing, and returns
// the screenshot directory.
func needBrowser(t *testing.T) string {
	t.Helper()
	for _, need := range []string{"node", "/usr/bin/chromium"} {
		if _, err := exec.LookPath(need); err != nil {
			t.Fatalf("%s is missing: run the tests with scripts/test, which installs it", need)
		}
	}
	if _, err := os.Stat("../../api/webtest/node_modules/playwright-core"); err != nil {
		t.Fatal("playwright-core is missing: run the tests with scripts/test, which installs it")
	}
	shots := filepath.Join("..", "..", "var", "screenshots")
	_ = os.MkdirAll(shots, 0o755)
	return shots
}

// TestPagesInBrowser drives the chat widget and the agent console in Debian's headless
// Chromium through playwright-core (api/webtest/pages.mjs), against the real server.
func TestPagesInBrowser(t *testing.T) {
	t.Parallel()
	shots := needBrowser(t)
	m := startMain(t)
	cmd := exec.CommandContext(t.Context(), "node", "../../api/webtest/pages.mjs", m.URL, DemoAgentEmail, m.Config.DemoPassword, shots)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("browser walk failed: %v", err)
	}
}

// TestEditorInBrowser drives the knowledge editor (api/webtest/editor.mjs) in headless
// Chromium with a customer on the chat widget: an edited answer is tried as a draft while
// customers keep the old one, published, compared with the version before and rolled back;
// a bad import names its line and imports nothing; an unanswered question shows up as a gap.
func TestEditorInBrowser(t *testing.T) {
	t.Parallel()
	shots := needBrowser(t)
	m := startMain(t)
	cmd := exec.CommandContext(t.Context(), "node", "../../api/webtest/editor.mjs", m.URL, DemoEditorEmail, m.Config.DemoPassword, shots,
		DemoAgentEmail)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("browser walk failed: %v", err)
	}
}
