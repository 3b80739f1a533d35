package migrate_test

import (
	"testing"
	"testing/fstest"

	"github.com/kefu-dev/kefu/internal/migrate"
	"github.com/kefu-dev/kefu/internal/pgtest"
)

func TestUp(t *testing.T) {
	t.Parallel()
	src := migrate.Source{Name: "demo", FS: fstest.MapFS{
		"001_a.sql": {Data: []byte("CREATE TABLE demo_a (id int);")},
		"002_b.sql": {Data: []byte("ALTER TABLE demo_a ADD COLUMN name text;")},
	}}
	pool := pgtest.Schema(t, src)
	// Again: nothing to do, no error.
	if err := migrate.Up(t.Context(), pool, src); err != nil {
		t.Fatal(err)
	}
	cur, latest, err := migrate.Version(t.Context(), pool, src)
	if err != nil || cur != 2 || latest != 2 {
		t.Fatalf("Version = %d/%d, %v; want 2/2", cur, latest, err)
	}
	if _, err := pool.Exec(t.Context(), "INSERT INTO demo_a (id, name) VALUES (1, 'x')"); err != nil {
		t.Fatal(err)
	}
	bad := migrate.Source{Name: "bad", FS: fstest.MapFS{"001_x.sql": {Data: []byte("CREATE TABLE (;")}}}
	if err := migrate.Up(t.Context(), pool, bad); err == nil {
		t.Fatal("a broken migration applied without error")
	}
}
