package main

import (
	"flag"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/kefu-dev/kefu/api"
)

// TestAdminListener: -admin-addr serves pprof and the metrics on a listener of its own; an
// address already taken is skipped, not fatal.
func TestAdminListener(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	m := &Main{Config: Config{AdminAddr: "127.0.0.1:0"}, Log: log}
	m.serveAdmin(api.NewMetrics(nil, log))
	if m.admin == nil || m.AdminURL == "" {
		t.Fatal("no admin listener")
	}
	t.Cleanup(func() {
		_ = m.admin.Close()
		m.wg.Wait()
	})
	for _, tt := range []struct{ path, want string }{
		{"/debug/pprof/", "goroutine"},
		{"/debug/pprof/goroutine?debug=1", "goroutine profile:"},
		{"/debug/pprof/heap?debug=1", "heap profile:"},
		{"/debug/pprof/cmdline", ""},
		{"/metrics", "kefu_ws_connections"},
		{"/healthz", "ok"},
	} {
		res, err := http.Get(m.AdminURL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), tt.want) {
			t.Errorf("GET %s = %d %.200s, want 200 with %q", tt.path, res.StatusCode, body, tt.want)
		}
	}

	taken := &Main{Config: Config{AdminAddr: strings.TrimPrefix(m.AdminURL, "http://")}, Log: log}
	taken.serveAdmin(api.NewMetrics(nil, log))
	if taken.admin != nil {
		t.Fatal("a second admin listener on a taken address")
	}
	for _, off := range []string{"", "off"} {
		none := &Main{Config: Config{AdminAddr: off}, Log: log}
		if none.serveAdmin(api.NewMetrics(nil, log)); none.admin != nil {
			t.Fatalf("-admin-addr %q started a listener", off)
		}
	}
}

func TestConfigLimits(t *testing.T) {
	t.Parallel()
	c := Config{IPMaxConns: 200, IPConnRate: 10, IPRequestRate: 20, IPExempt: "127.0.0.0/8, ::1", TrustedProxies: "10.0.0.0/8,192.0.2.7"}
	l, err := c.limits()
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Exempt) != 2 || l.Exempt[1].String() != "::1/128" || len(l.TrustedProxies) != 2 || l.TrustedProxies[1].String() != "192.0.2.7/32" ||
		l.MaxConns != 200 || l.ConnRate != 10 || l.RequestRate != 20 {
		t.Fatalf("limits %+v", l)
	}
	for _, bad := range []Config{{IPExempt: "localhost"}, {TrustedProxies: "10.0.0.0/33"}} {
		if _, err := bad.limits(); err == nil || !strings.Contains(err.Error(), "-") {
			t.Errorf("limits of %+v = %v, want an error naming the flag", bad, err)
		}
	}
}

func TestDeflateFlag(t *testing.T) {
	t.Setenv("KEFU_WS_DEFLATE", "")
	for _, tt := range []struct {
		args []string
		want bool // WSNoDeflate
	}{{nil, false}, {[]string{"-ws-deflate"}, false}, {[]string{"-ws-deflate=false"}, true}, {[]string{"-ws-deflate=true"}, false}} {
		var c Config
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		c.bindFlags(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		if c.WSNoDeflate != tt.want {
			t.Errorf("%v: WSNoDeflate %v, want %v", tt.args, c.WSNoDeflate, tt.want)
		}
	}
}
