// Package localpg runs a private PostgreSQL cluster for Kefu: the embedded default when no
// DATABASE_URL is given, and the database of the test script.
//
// The cluster lives in one folder (./var/pg by default), listens only on a unix socket in that
// folder, so it never clashes with a server already on port 5432, and uses the PostgreSQL
// binaries of the distribution (initdb, pg_ctl). PostgreSQL refuses to run as root, so when
// Kefu runs as root the cluster runs as the "postgres" system user; when that user cannot
// reach the folder (a checkout under /root, say) the cluster moves to /var/lib/kefu.
package localpg

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a private PostgreSQL cluster in a folder.
type Cluster struct {
	Dir  string // the folder that holds data/, run/ and postgres.log
	Port int    // only names the socket file (.s.PGSQL.<port>); nothing listens on TCP
	bin  string
	cred *syscall.Credential // set when running as root: the postgres user
	uid  int
	gid  int
	log  *slog.Logger

	started bool // this process started the server
}

// New prepares a cluster in dir (created if missing). Nothing is started yet.
func New(dir string, log *slog.Logger) (*Cluster, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: abs, Port: 5432, bin: bin, uid: -1, gid: -1, log: log.With("component", "localpg")}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("localpg: running as root needs the postgres system user (apt-get install postgresql): %w", err)
		}
		c.uid, _ = strconv.Atoi(u.Uid)
		c.gid, _ = strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(c.uid), Gid: uint32(c.gid)}
		if !reachable(abs, c.uid, c.gid) {
			sum := sha256.Sum256([]byte(abs))
			alt := filepath.Join("/var/lib/kefu", hex.EncodeToString(sum[:6]))
			c.log.Info("cluster folder not reachable by the postgres user; using another", "wanted", abs, "dir", alt)
			c.Dir = alt
		}
	}
	return c, nil
}

// findBin returns the folder of initdb and pg_ctl: $KEFU_PG_BIN, else the newest
// /usr/lib/postgresql/N/bin, else the folder of pg_ctl on PATH.
func findBin() (string, error) {
	if b := os.Getenv("KEFU_PG_BIN"); b != "" {
		return b, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("localpg: no PostgreSQL server binaries found (run scripts/setup, or set KEFU_PG_BIN or DATABASE_URL)")
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// reachable reports whether uid/gid can walk down to dir: every existing ancestor must be
// searchable by them.
func reachable(dir string, uid, gid int) bool {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err == nil {
			st := fi.Sys().(*syscall.Stat_t)
			mode := fi.Mode().Perm()
			ok := mode&0o001 != 0 ||
				(int(st.Uid) == uid && mode&0o100 != 0) ||
				(int(st.Gid) == gid && mode&0o010 != 0)
			if !ok {
				return false
			}
		}
		if d == "/" {
			return true
		}
	}
}

func (c *Cluster) dataDir() string { return filepath.Join(c.Dir, "data") }

// SocketDir is where the server's unix socket lives. A socket path is limited to 107 bytes, so
// a deep folder gets its socket under /tmp instead.
func (c *Cluster) SocketDir() string {
	d := filepath.Join(c.Dir, "run")
	if len(d)+len("/.s.PGSQL.")+5 >= 100 {
		sum := sha256.Sum256([]byte(c.Dir))
		d = filepath.Join(os.TempDir(), "kefu-pg-"+hex.EncodeToString(sum[:6]))
	}
	return d
}

// URL is the connection string for database name.
func (c *Cluster) URL(name string) string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable", c.SocketDir(), c.Port, name)
}

// Start initialises the cluster when it is new and starts it unless it already runs. The
// server runs in its own process group, so a Ctrl-C meant for Kefu does not stop it first:
// Stop does, after Kefu has finished.
func (c *Cluster) Start(ctx context.Context) error {
	for _, d := range []string{c.Dir, c.SocketDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("localpg: %w", err)
		}
		if err := c.chown(d); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(c.dataDir(), "PG_VERSION")); errors.Is(err, fs.ErrNotExist) {
		c.log.Info("initialising private PostgreSQL cluster", "dir", c.dataDir())
		if err := c.run(ctx, "initdb", "-D", c.dataDir(), "-U", "postgres", "--auth=trust",
			"--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"); err != nil {
			return err
		}
	}
	if c.running(ctx) {
		c.log.Info("private PostgreSQL already running", "dir", c.dataDir())
		return nil
	}
	opts := fmt.Sprintf("-k %s -p %d -c listen_addresses='' -c fsync=off -c max_connections=200", c.SocketDir(), c.Port)
	if os.Getenv("KEFU_PG_FSYNC") == "on" {
		opts = strings.Replace(opts, " -c fsync=off", "", 1)
	}
	if err := c.run(ctx, "pg_ctl", "-D", c.dataDir(), "-l", filepath.Join(c.Dir, "postgres.log"),
		"-w", "-t", "60", "-o", opts, "start"); err != nil {
		return fmt.Errorf("%w (see %s)", err, filepath.Join(c.Dir, "postgres.log"))
	}
	c.started = true
	c.log.Info("private PostgreSQL started", "socket", c.SocketDir())
	return nil
}

func (c *Cluster) running(ctx context.Context) bool {
	cmd := c.command(ctx, "pg_ctl", "-D", c.dataDir(), "status")
	return cmd.Run() == nil
}

// Started reports whether Start started the server (false when it was already running).
func (c *Cluster) Started() bool { return c.started }

// Stop shuts the server down (fast mode: sessions are ended, nothing is lost).
func (c *Cluster) Stop(ctx context.Context) error {
	if !c.running(ctx) {
		return nil
	}
	err := c.run(ctx, "pg_ctl", "-D", c.dataDir(), "-m", "fast", "-w", "-t", "60", "stop")
	if err == nil {
		c.log.Info("private PostgreSQL stopped")
	}
	return err
}

// EnsureDatabase creates database name when missing, with the vector extension in it.
func (c *Cluster) EnsureDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	var exists bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	if err == nil && !exists {
		_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	}
	conn.Close(ctx)
	if err != nil {
		return fmt.Errorf("localpg: create database: %w", err)
	}
	db, err := pgx.Connect(ctx, c.URL(name))
	if err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	defer db.Close(ctx)
	if _, err := db.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS vector"); err != nil {
		return fmt.Errorf("localpg: pgvector is not installed for this PostgreSQL (run scripts/setup): %w", err)
	}
	return nil
}

func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: c.cred}
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

func (c *Cluster) run(ctx context.Context, name string, args ...string) error {
	out, err := c.command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("localpg: %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (c *Cluster) chown(path string) error {
	if c.cred == nil {
		return nil
	}
	if err := os.Chown(path, c.uid, c.gid); err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	return nil
}
