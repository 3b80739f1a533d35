package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kefu-dev/kefu/dialog"
	"github.com/kefu-dev/kefu/handoff"
	"github.com/kefu-dev/kefu/internal/pgtest"
	"github.com/kefu-dev/kefu/retrieval"
)

// TestCustomerProfile: the embedding site's profile of a customer, signed or not, when the
// session is created and in the hello frame.
func TestCustomerProfile(t *testing.T) {
	t.Parallel()
	secret := []byte("site-secret")
	vip := handoff.Profile{Name: "李雷", Email: "li@example.com", Tier: "vip"}

	type testBundle struct {
		url    string
		engine *dialog.Engine
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		pool := pgtest.Schema(t, retrieval.Migrations(), handoff.Migrations(), dialog.Migrations())
		log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
		q := handoff.NewQueue(pool, log)
		// No model and no knowledge: these tests never run a turn.
		engine := dialog.NewEngine(pool, nil, nil, q, dialog.Config{IdentitySecret: secret}, log)
		ts := httptest.NewServer(New(Deps{Pool: pool, Engine: engine, Queue: q, Log: log}).Handler())
		t.Cleanup(ts.Close)
		return &testBundle{url: ts.URL, engine: engine}
	}
	create := func(t *testing.T, b *testBundle, body string) (int, string) {
		t.Helper()
		res, err := http.Post(b.url+"/api/sessions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		out, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, string(out)
	}
	profileOf := func(t *testing.T, b *testBundle, id int64) handoff.Profile {
		t.Helper()
		s, err := b.engine.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		return s.Profile
	}

	t.Run("CreateSigned", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := `{"channel":"web","language":"zh","profile":{"name":"李雷","email":"li@example.com","tier":"vip"},"signature":"` +
			dialog.SignProfile(secret, vip) + `"}`
		code, out := create(t, b, body)
		if code != http.StatusCreated || !strings.Contains(out, `"verified":true`) {
			t.Fatalf("POST /api/sessions = %d %s, want 201 and verified", code, out)
		}
		id, _ := created(t, out)
		if p := profileOf(t, b, id); !p.VIP() || p.Name != "李雷" {
			t.Fatalf("stored profile %+v, want the verified VIP", p)
		}
	})

	t.Run("CreateUnsigned", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, sig := range []string{"", strings.Repeat("ab", 32), dialog.SignProfile([]byte("other"), vip)} {
			// "verified": true from the client counts for nothing.
			body := `{"profile":{"name":"李雷","email":"li@example.com","tier":"vip","verified":true},"signature":"` + sig + `"}`
			code, out := create(t, b, body)
			if code != http.StatusCreated || !strings.Contains(out, `"verified":false`) {
				t.Fatalf("signature %q: POST /api/sessions = %d %s, want 201 and not verified", sig, code, out)
			}
			id, _ := created(t, out)
			if p := profileOf(t, b, id); p.Verified || p.VIP() || p.Tier != "vip" {
				t.Fatalf("signature %q: stored profile %+v, want kept unverified", sig, p)
			}
		}
	})

	t.Run("CreateBadProfile", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, body := range []string{
			`{"profile":{"nickname":"x"}}`,
			`{"profile":{"name":"` + strings.Repeat("长", 100) + `"}}`,
		} {
			if code, out := create(t, b, body); code != http.StatusBadRequest {
				t.Errorf("POST /api/sessions %.40s… = %d %s, want 400", body, code, out)
			}
		}
	})

	t.Run("Hello", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		code, out := create(t, b, `{"channel":"web"}`)
		if code != http.StatusCreated {
			t.Fatalf("POST /api/sessions = %d %s", code, out)
		}
		id, token := created(t, out)
		hello := func(profile map[string]any, sig string) map[string]any {
			t.Helper()
			ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(b.url, "http")+"/ws/customer", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			f := map[string]any{"type": "hello", "session_id": id, "token": token}
			if profile != nil {
				f["profile"], f["signature"] = profile, sig
			}
			if err := ws.WriteJSON(f); err != nil {
				t.Fatal(err)
			}
			_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				var got map[string]any
				if err := ws.ReadJSON(&got); err != nil {
					t.Fatal(err)
				}
				if got["type"] == "welcome" {
					return got["session"].(map[string]any)["profile"].(map[string]any)
				}
				if got["type"] == "error" {
					t.Fatalf("hello: %v", got)
				}
			}
		}
		claim := map[string]any{"name": "李雷", "email": "li@example.com", "tier": "vip"}
		if p := hello(claim, dialog.SignProfile(secret, vip)); p["verified"] != true || p["tier"] != "vip" {
			t.Fatalf("welcome after a signed hello: profile %v, want verified", p)
		}
		// Someone with the session's token cannot overwrite what the site vouched for.
		if p := hello(map[string]any{"name": "someone", "tier": "vip"}, ""); p["verified"] != true || p["name"] != "李雷" {
			t.Fatalf("welcome after an unsigned hello: profile %v, want the signed one kept", p)
		}
		// A hello without a profile leaves it as it is.
		if p := hello(nil, ""); p["verified"] != true {
			t.Fatalf("welcome after a plain hello: profile %v", p)
		}
		if p := profileOf(t, b, id); !p.VIP() || p.Name != "李雷" {
			t.Fatalf("stored profile %+v", p)
		}
	})
}

// created reads the body of POST /api/sessions.
func created(t *testing.T, body string) (id int64, token string) {
	t.Helper()
	var out struct {
		SessionID int64  `json:"session_id"`
		Token     string `json:"token"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil || out.SessionID == 0 || out.Token == "" {
		t.Fatalf("POST /api/sessions answered %s (%v)", body, err)
	}
	return out.SessionID, out.Token
}
