package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kefu-dev/kefu"
	"github.com/kefu-dev/kefu/handoff"
)

// accountPasswordEnv is the environment variable an account's password is read from; without
// it the password is the first line of standard input. It is never a flag: flags show in ps.
const accountPasswordEnv = "KEFU_ACCOUNT_PASSWORD"

const accountsUsage = "usage: kefu accounts add -email E [-name N] [-roles admin,agent] [-max-chats 5] [-languages zh,en] | " +
	"kefu accounts passwd -email E | kefu accounts list (the password: " + accountPasswordEnv + " or one line on stdin)"

// accountsCmd is `kefu accounts add|passwd|list`: create an account (the first admin, say),
// give one a new password, or list them, without the web pages.
func accountsCmd(ctx context.Context, args []string, log *slog.Logger) error {
	return runAccounts(ctx, args, os.Stdin, os.Stdout, log)
}

// runAccounts is accountsCmd reading passwords from in and writing its report to out.
func runAccounts(ctx context.Context, args []string, in io.Reader, out io.Writer, log *slog.Logger) error {
	if len(args) == 0 {
		return errors.New(accountsUsage)
	}
	if args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(os.Stderr, accountsUsage)
		return flag.ErrHelp
	}
	fs := flag.NewFlagSet("accounts "+args[0], flag.ContinueOnError)
	var cfg Config
	cfg.bindFlags(fs)
	switch args[0] {
	case "add":
		var ag handoff.Agent
		var roles, languages string
		fs.StringVar(&ag.Email, "email", "", "the account's e-mail, its login (required)")
		fs.StringVar(&ag.Name, "name", "", "the name shown to customers and colleagues (default: the e-mail)")
		fs.StringVar(&roles, "roles", handoff.RoleAgent, "comma-separated roles: admin, supervisor, agent, editor")
		fs.IntVar(&ag.MaxChats, "max-chats", 5, "conversations the account may hold at once, 1 to 100")
		fs.StringVar(&languages, "languages", "", "comma-separated languages the account answers in (empty: any)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		ag.Roles, ag.Languages = splitList(roles), splitList(languages)
		return accountsAdd(ctx, cfg, ag, in, out, log)
	case "passwd":
		email := fs.String("email", "", "the e-mail of the account (required)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return accountsPasswd(ctx, cfg, *email, in, out, log)
	case "list":
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return accountsList(ctx, cfg, out, log)
	}
	return fmt.Errorf("unknown accounts command %q (want add, passwd or list)", args[0])
}

// accountsAdd creates ag with the password from the environment or in, and prints it.
func accountsAdd(ctx context.Context, cfg Config, ag handoff.Agent, in io.Reader, out io.Writer, log *slog.Logger) error {
	ag.Email = strings.TrimSpace(ag.Email)
	if ag.Email == "" {
		return errors.New("accounts add: -email is required")
	}
	if ag.MaxChats < 1 || ag.MaxChats > 100 {
		return fmt.Errorf("accounts add: -max-chats must be 1 to 100, not %d", ag.MaxChats)
	}
	if ag.Name == "" {
		ag.Name = ag.Email
	}
	password, err := readPassword(in)
	if err != nil {
		return fmt.Errorf("accounts add: %w", err)
	}
	return withAgents(ctx, cfg, log, func(agents *handoff.Agents) error {
		created, err := agents.Create(ctx, ag, password)
		if kefu.CodeOf(err) == kefu.Conflict {
			return fmt.Errorf("accounts add: an account with the e-mail %s exists (kefu accounts passwd gives it a new password): %w", ag.Email, err)
		}
		if err != nil {
			return fmt.Errorf("accounts add %s: %w", ag.Email, err)
		}
		_, err = fmt.Fprintf(out, "created account %d %s roles %s\n", created.ID, created.Email, strings.Join(created.Roles, ","))
		return err
	})
}

// accountsPasswd gives the account with email the password from the environment or in; its
// logins end (handoff's SetPassword revokes them).
func accountsPasswd(ctx context.Context, cfg Config, email string, in io.Reader, out io.Writer, log *slog.Logger) error {
	email = strings.TrimSpace(email)
	if email == "" {
		return errors.New("accounts passwd: -email is required")
	}
	password, err := readPassword(in)
	if err != nil {
		return fmt.Errorf("accounts passwd: %w", err)
	}
	return withAgents(ctx, cfg, log, func(agents *handoff.Agents) error {
		ag, err := findAccount(ctx, agents, email)
		if err != nil {
			return fmt.Errorf("accounts passwd: %w", err)
		}
		if err := agents.SetPassword(ctx, ag.ID, password); err != nil {
			return fmt.Errorf("accounts passwd %s: %w", ag.Email, err)
		}
		_, err = fmt.Fprintf(out, "new password for account %d %s; its logins have ended\n", ag.ID, ag.Email)
		return err
	})
}

// accountsList prints every account as a table.
func accountsList(ctx context.Context, cfg Config, out io.Writer, log *slog.Logger) error {
	return withAgents(ctx, cfg, log, func(agents *handoff.Agents) error {
		list, err := agents.List(ctx)
		if err != nil {
			return fmt.Errorf("accounts list: %w", err)
		}
		return writeAccounts(out, list)
	})
}

// writeAccounts writes accounts as an aligned table: id, email, name, roles, max_chats, status.
func writeAccounts(out io.Writer, accounts []handoff.Agent) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tEMAIL\tNAME\tROLES\tMAX_CHATS\tSTATUS")
	for _, ag := range accounts {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\n", ag.ID, ag.Email, ag.Name, strings.Join(ag.Roles, ","), ag.MaxChats, ag.Status)
	}
	return tw.Flush()
}

// findAccount is the account whose e-mail is email (compared as handoff stores it: trimmed,
// lower-case).
func findAccount(ctx context.Context, agents *handoff.Agents, email string) (handoff.Agent, error) {
	list, err := agents.List(ctx)
	if err != nil {
		return handoff.Agent{}, err
	}
	want := strings.ToLower(strings.TrimSpace(email))
	for _, ag := range list {
		if ag.Email == want {
			return ag, nil
		}
	}
	return handoff.Agent{}, fmt.Errorf("no account with the e-mail %s", email)
}

// withAgents runs fn on the account directory of cfg's database (see withDatabase).
func withAgents(ctx context.Context, cfg Config, log *slog.Logger, fn func(*handoff.Agents) error) error {
	return withDatabase(ctx, cfg, log, func(pool *pgxpool.Pool) error { return fn(handoff.NewAgents(pool, log)) })
}

// readPassword is $KEFU_ACCOUNT_PASSWORD when set, else the first line of in without its line
// ending (asked for when in is a terminal). handoff checks the length; an empty one is
// refused here with how to give one.
func readPassword(in io.Reader) (string, error) {
	if pw := os.Getenv(accountPasswordEnv); pw != "" {
		return pw, nil
	}
	if f, ok := in.(*os.File); ok && isTerminal(f) {
		fmt.Fprintf(os.Stderr, "password (shown as you type; set %s to avoid that): ", accountPasswordEnv)
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password from stdin: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", fmt.Errorf("no password: set %s or give it as one line on stdin", accountPasswordEnv)
	}
	return pw, nil
}

// splitList is a comma-separated flag's items, trimmed, without empty ones.
func splitList(s string) []string {
	var items []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}

// isTerminal reports whether f is a terminal (a character device), where a prompt helps.
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
