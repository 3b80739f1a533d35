package localpg_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/kefu-dev/kefu/internal/localpg"
)

// TestCluster starts a private cluster in a fresh folder, creates a database with pgvector,
// uses it, and stops it: the embedded default of kefu serve.
func TestCluster(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// t.TempDir is private to root; the postgres user needs to walk into it.
	_ = os.Chmod(dir, 0o755)
	c, err := localpg.New(filepath.Join(dir, "pg"), slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	c.Port = 5499 // names the socket only
	t.Cleanup(func() { _ = c.Stop(t.Context()) })
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !c.Started() {
		t.Fatal("Started() = false after starting a new cluster")
	}
	if err := c.EnsureDatabase(t.Context(), "kefu_x"); err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureDatabase(t.Context(), "kefu_x"); err != nil { // again: no error
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), c.URL("kefu_x"))
	if err != nil {
		t.Fatal(err)
	}
	var d float64
	err = conn.QueryRow(t.Context(), "SELECT '[1,0]'::vector <=> '[0,1]'::vector").Scan(&d)
	conn.Close(t.Context())
	if err != nil || d != 1 {
		t.Fatalf("cosine distance = %v, %v; want 1", d, err)
	}
	// A second Start finds it running and leaves it to its owner.
	c2, _ := localpg.New(filepath.Join(dir, "pg"), slog.New(slog.NewTextHandler(t.Output(), nil)))
	c2.Port = 5499
	if err := c2.Start(t.Context()); err != nil || c2.Started() {
		t.Fatalf("second Start = %v, started %v; want no error, not started", err, c2.Started())
	}
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.Connect(t.Context(), c.URL("kefu_x")); err == nil {
		t.Fatal("connected after Stop")
	}
}
