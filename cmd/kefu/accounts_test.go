package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/kefu-dev/kefu"
	"github.com/kefu-dev/kefu/handoff"
	"github.com/kefu-dev/kefu/internal/pgtest"
)

// accountsRun runs `kefu accounts args…` against the database url with stdin and returns
// what it printed and what it logged.
func accountsRun(t *testing.T, url, stdin string, args ...string) (out, logged string, err error) {
	t.Helper()
	var stdout, logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	args = append(args[:1:1], append([]string{"-database-url", url}, args[1:]...)...)
	err = runAccounts(context.Background(), args, strings.NewReader(stdin), &stdout, log)
	return stdout.String(), logs.String(), err
}

// TestAccountsAddPasswdList: an admin made with `accounts add` logs in through handoff;
// `accounts passwd` changes the password and ends the old login; `accounts list` shows the
// account; no password is ever printed or logged.
func TestAccountsAddPasswdList(t *testing.T) {
	t.Setenv(accountPasswordEnv, "")
	pool, url := pgtest.SchemaURL(t)
	ctx := context.Background()
	const email, first, second = "admin@example.com", "first-long-password", "second-long-password"

	out, logged, err := accountsRun(t, url, first+"\n", "add", "-email", "Admin@Example.com ", "-name", "Root 管理员",
		"-roles", "admin, agent", "-max-chats", "7", "-languages", "zh,en")
	if err != nil {
		t.Fatalf("add: %v", err)
	}
	if !strings.Contains(out, "created account") || !strings.Contains(out, email) || !strings.Contains(out, "roles admin,agent") {
		t.Errorf("add printed %q, want the id, %s and its roles", out, email)
	}
	if strings.Contains(out+logged, first) {
		t.Errorf("add printed or logged the password:\n%s\n%s", out, logged)
	}

	agents := handoff.NewAgents(pool, slog.New(slog.DiscardHandler))
	tok, ag, err := agents.Login(ctx, email, first)
	if err != nil {
		t.Fatalf("log in with the new admin: %v", err)
	}
	if ag.Email != email || ag.Name != "Root 管理员" || ag.MaxChats != 7 || !ag.HasRole(handoff.RoleSupervisor, handoff.RoleEditor) ||
		strings.Join(ag.Languages, ",") != "zh,en" {
		t.Errorf("account %+v: want %s, Root 管理员, 7 chats, admin, zh,en", ag, email)
	}
	if _, err := agents.Authenticate(ctx, tok); err != nil {
		t.Fatalf("the login's token: %v", err)
	}

	// The new password from the environment, this time.
	t.Setenv(accountPasswordEnv, second)
	out, logged, err = accountsRun(t, url, "", "passwd", "-email", email)
	if err != nil {
		t.Fatalf("passwd: %v", err)
	}
	if !strings.Contains(out, email) || strings.Contains(out+logged, second) {
		t.Errorf("passwd printed %q and logged %q: want the e-mail, never the password", out, logged)
	}
	if _, err := agents.Authenticate(ctx, tok); kefu.CodeOf(err) != kefu.Unauthorized {
		t.Errorf("the old token after passwd: %v, want unauthorized", err)
	}
	if _, _, err := agents.Login(ctx, email, first); kefu.CodeOf(err) != kefu.Unauthorized {
		t.Errorf("the old password after passwd: %v, want unauthorized", err)
	}
	if _, _, err := agents.Login(ctx, email, second); err != nil {
		t.Errorf("the new password: %v", err)
	}

	t.Setenv(accountPasswordEnv, "")
	if _, _, err := accountsRun(t, url, "an-agent-password\n", "add", "-email", "agent@example.com"); err != nil {
		t.Fatalf("add an agent with the defaults: %v", err)
	}
	out, _, err = accountsRun(t, url, "", "list")
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "ID EMAIL NAME ROLES MAX_CHATS STATUS" {
		t.Fatalf("list printed:\n%s\nwant a header and two accounts", out)
	}
	var admin, agent string
	for _, l := range lines[1:] {
		switch {
		case strings.Contains(l, email):
			admin = strings.Join(strings.Fields(l), " ")
		case strings.Contains(l, "agent@example.com"):
			agent = strings.Join(strings.Fields(l), " ")
		}
	}
	if want := " admin@example.com Root 管理员 admin,agent 7 offline"; !strings.HasSuffix(admin, want) {
		t.Errorf("list's admin row %q, want it to end %q", admin, want)
	}
	if want := " agent@example.com agent@example.com agent 5 offline"; !strings.HasSuffix(agent, want) {
		t.Errorf("list's agent row %q, want it to end %q", agent, want)
	}
}

// TestAccountsErrors: bad input gives a clear error and changes nothing.
func TestAccountsErrors(t *testing.T) {
	t.Setenv(accountPasswordEnv, "")
	pool, url := pgtest.SchemaURL(t)
	if _, _, err := accountsRun(t, url, "a-long-password\n", "add", "-email", "taken@example.com"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"add without -email", "a-long-password\n", []string{"add", "-roles", "admin"}, "-email is required"},
		{"passwd without -email", "a-long-password\n", []string{"passwd"}, "-email is required"},
		{"unknown role", "a-long-password\n", []string{"add", "-email", "x@example.com", "-roles", "admin,boss"}, `unknown role "boss"`},
		{"short password", "short\n", []string{"add", "-email", "x@example.com"}, "at least 8 characters"},
		{"short new password", "short\n", []string{"passwd", "-email", "taken@example.com"}, "at least 8 characters"},
		{"no password", "", []string{"add", "-email", "x@example.com"}, "no password: set KEFU_ACCOUNT_PASSWORD"},
		{"taken e-mail", "another-password\n", []string{"add", "-email", "TAKEN@example.com"}, "an account with the e-mail TAKEN@example.com exists"},
		{"unknown e-mail", "a-long-password\n", []string{"passwd", "-email", "nobody@example.com"}, "no account with the e-mail nobody@example.com"},
		{"bad max-chats", "a-long-password\n", []string{"add", "-email", "x@example.com", "-max-chats", "0"}, "-max-chats must be 1 to 100"},
		{"unknown command", "", []string{"remove"}, `unknown accounts command "remove"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, logged, err := accountsRun(t, url, c.stdin, c.args...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one saying %q", err, c.want)
			}
			if pw := strings.TrimSpace(c.stdin); pw != "" && strings.Contains(out+logged+err.Error(), pw) {
				t.Errorf("the password was shown: %q %q %v", out, logged, err)
			}
		})
	}
	if err := runAccounts(context.Background(), nil, strings.NewReader(""), &bytes.Buffer{}, slog.New(slog.DiscardHandler)); err == nil ||
		!strings.Contains(err.Error(), "usage: kefu accounts add") {
		t.Errorf("no subcommand: %v, want the usage", err)
	}
	n, err := handoff.NewAgents(pool, slog.New(slog.DiscardHandler)).Count(context.Background())
	if err != nil || n != 1 {
		t.Errorf("%d accounts (%v) after the bad input, want the 1 made first", n, err)
	}
	agents := handoff.NewAgents(pool, slog.New(slog.DiscardHandler))
	if _, _, err := agents.Login(context.Background(), "taken@example.com", "a-long-password"); err != nil {
		t.Errorf("the first account's password changed: %v", err)
	}
}

// TestAccountsCommand: the kefu binary exits 0 for `echo pw | kefu accounts add`, non-zero
// with a clear message for a taken e-mail, and prints the password in neither.
func TestAccountsCommand(t *testing.T) {
	_, url := pgtest.SchemaURL(t)
	const password = "piped-long-password"
	kefuAccounts := func(args ...string) (string, error) {
		cmd := exec.Command(os.Args[0], append([]string{"accounts"}, args...)...)
		cmd.Env = append(os.Environ(), "KEFU_TEST_RUN_MAIN=1", "KEFU_LOG_LEVEL=DEBUG", accountPasswordEnv+"=")
		cmd.Stdin = strings.NewReader(password + "\n")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := kefuAccounts("add", "-database-url", url, "-email", "admin@example.com", "-roles", "admin")
	if err != nil || !strings.Contains(out, "created account") || strings.Contains(out, password) {
		t.Fatalf("echo pw | kefu accounts add: %v\n%s", err, out)
	}
	out, err = kefuAccounts("add", "-database-url", url, "-email", "admin@example.com", "-roles", "admin")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 || !strings.Contains(out, "exists") || strings.Contains(out, password) {
		t.Fatalf("adding a taken e-mail: %v, want a non-zero exit saying it exists:\n%s", err, out)
	}
	out, err = kefuAccounts("list", "-database-url", url)
	if err != nil || !strings.Contains(out, "admin@example.com") {
		t.Fatalf("kefu accounts list: %v\n%s", err, out)
	}
}
