package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestPagesInBrowser drives the chat widget and the agent console in Debian's headless
// Chromium through playwright-core (api/webtest/pages.mjs), against the real server.
func TestPagesInBrowser(t *testing.T) {
	t.Parallel()
	for _, need := range []string{"node", "/usr/bin/chromium"} {
		if _, err := exec.LookPath(need); err != nil {
			t.Fatalf("%s is missing: run the tests with scripts/test, which installs it", need)
		}
	}
	if _, err := os.Stat("../../api/webtest/node_modules/playwright-core"); err != nil {
		t.Fatal("playwright-core is missing: run the tests with scripts/test, which installs it")
	}
	m := startMain(t)
	shots := filepath.Join("..", "..", "var", "screenshots")
	_ = os.MkdirAll(shots, 0o755)
	cmd := exec.CommandContext(t.Context(), "node", "../../api/webtest/pages.mjs", m.URL, DemoAgentEmail, m.Config.DemoPassword, shots)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("browser walk failed: %v", err)
	}
}
