package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kefu-dev/kefu/internal/pgtest"
	"github.com/kefu-dev/kefu/nlu"
)

// TestMain lets a test run the kefu binary itself: the test binary re-executed with
// KEFU_TEST_RUN_MAIN=1 is kefu, with the arguments it was given.
func TestMain(m *testing.M) {
	if os.Getenv("KEFU_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestKillDuringLoad: `kefu dialog bench` drives 200 sessions and logs every turn it sends
// and every turn acknowledged; it is killed with SIGKILL mid-run; then `kefu dialog verify`
// counts stored turns against the log: no acknowledged turn lost, none applied twice, every
// stored turn has its reply, and resending what was in flight stores each exactly once.
func TestKillDuringLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("a load run")
	}
	_, url := pgtest.SchemaURL(t)
	dir := t.TempDir()
	acks := filepath.Join(dir, "acks.log")
	common := []string{"-database-url", url, "-onnxruntime-lib", nlu.FindRuntime(), "-model", "../../models/intent",
		"-flows", "../../dialog/flows"}
	cmd := exec.Command(os.Args[0], append([]string{"dialog", "bench", "-sessions", "200", "-think", "20ms",
		"-duration", "60s", "-keep", "-ack-log", acks}, common...)...)
	cmd.Env = append(os.Environ(), "KEFU_TEST_RUN_MAIN=1", "KEFU_LOG_LEVEL=ERROR")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	schema := ""
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if s, ok := strings.CutPrefix(sc.Text(), "schema "); ok {
			schema = s
			break
		}
	}
	if schema == "" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the bench printed no schema; stderr:\n%s", stderr.String())
	}
	// Kill it once a good number of turns are through.
	deadline := time.Now().Add(90 * time.Second)
	for {
		b, _ := os.ReadFile(acks)
		if bytes.Count(b, []byte("acked ")) >= 400 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("fewer than 400 turns acknowledged in 90s; stderr:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait() //nolint:errcheck // killed
	t.Logf("killed the bench with SIGKILL")

	verify := exec.Command(os.Args[0], append([]string{"dialog", "verify", "-schema", schema, "-ack-log", acks}, common...)...)
	verify.Env = append(os.Environ(), "KEFU_TEST_RUN_MAIN=1", "KEFU_LOG_LEVEL=ERROR")
	report, err := verify.CombinedOutput()
	t.Logf("kefu dialog verify:\n%s", report)
	if err != nil {
		t.Fatalf("verify failed: %v", err)
	}
	if !strings.Contains(string(report), "ok: no turn lost") {
		t.Fatal("verify did not report success")
	}
}

// TestConversationCommand: `kefu test conversations` prints PASS and FAIL per test, and for
// a failure the file, line, turn and what differed; it exits non-zero when one fails.
func TestConversationCommand(t *testing.T) {
	_, url := pgtest.SchemaURL(t)
	dir := t.TempDir()
	tests := `- test: greets
  turns:
    - user: 你好
      bot: 您好
- test: expects the wrong flow
  turns:
    - user: 我要退款
      flow: order_status
`
	if err := os.WriteFile(filepath.Join(dir, "t.yaml"), []byte(tests), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "test", "conversations", "-database-url", url, "-onnxruntime-lib", nlu.FindRuntime(),
		"-model", "../../models/intent", "-flows", "../../dialog/flows", dir)
	cmd.Env = append(os.Environ(), "KEFU_TEST_RUN_MAIN=1", "KEFU_LOG_LEVEL=ERROR")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("a failing conversation test exited 0:\n%s", out)
	}
	for _, want := range []string{"PASS  greets", "FAIL  expects the wrong flow", "t.yaml:7: turn 1 (user: \"我要退款\"): want flow \"order_status\" in progress, got \"refund_request\"",
		"1 passed, 1 failed"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
