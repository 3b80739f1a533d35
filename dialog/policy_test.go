package dialog_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/kefu-dev/kefu/dialog"
	"github.com/kefu-dev/kefu/handoff"
	"github.com/kefu-dev/kefu/internal/pgtest"
	"github.com/kefu-dev/kefu/retrieval"
)

// recordingQueue is the real queue that also remembers every request it was given.
type recordingQueue struct {
	*handoff.Queue
	mu   sync.Mutex
	reqs []handoff.Request
}

func (q *recordingQueue) Enqueue(ctx context.Context, tx pgx.Tx, r handoff.Request) (bool, error) {
	q.mu.Lock()
	q.reqs = append(q.reqs, r)
	q.mu.Unlock()
	return q.Queue.Enqueue(ctx, tx, r)
}

func (q *recordingQueue) last(t *testing.T) handoff.Request {
	t.Helper()
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.reqs) == 0 {
		t.Fatal("nothing was enqueued")
	}
	return q.reqs[len(q.reqs)-1]
}

// TestEscalationPolicy: each rule of the escalation policy, and each rule turned off.
func TestEscalationPolicy(t *testing.T) {
	t.Parallel()
	model := loadModel(t)
	secret := []byte("site-secret")

	type testBundle struct {
		engine *dialog.Engine
		queue  *recordingQueue
	}
	setup := func(t *testing.T, cfg dialog.Config) *testBundle {
		t.Helper()
		pool := pgtest.Schema(t, retrieval.Migrations(), handoff.Migrations(), dialog.Migrations())
		log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
		kb := retrieval.NewStore(pool, model, retrieval.DefaultThreshold, log)
		if _, err := kb.SeedDemo(t.Context()); err != nil {
			t.Fatal(err)
		}
		q := &recordingQueue{Queue: handoff.NewQueue(pool, log)}
		cfg.IdentitySecret = secret
		return &testBundle{engine: dialog.NewEngine(pool, model, kb, q, cfg, log), queue: q}
	}
	start := func(t *testing.T, b *testBundle, p handoff.Profile) dialog.Session {
		t.Helper()
		s, _, err := b.engine.StartSession(t.Context(), dialog.NewSession{Channel: "app", Profile: p})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	say := func(t *testing.T, b *testBundle, s dialog.Session, text string) dialog.TurnResult {
		t.Helper()
		res, err := b.engine.Turn(t.Context(), dialog.Inbound{SessionID: s.ID, Text: text})
		if err != nil {
			t.Fatalf("Turn(%q): %v", text, err)
		}
		return res
	}
	reason := func(r dialog.TurnResult) string {
		for _, m := range r.Replies {
			if m.Meta.Reason != "" {
				return m.Meta.Reason
			}
		}
		return ""
	}
	vip := dialog.SignProfile(secret, handoff.Profile{Name: "Li Lei", Tier: "vip"})

	t.Run("OneAngryMessage", func(t *testing.T) {
		t.Parallel()
		b := setup(t, dialog.Config{})
		s := start(t, b, handoff.Profile{})
		r := say(t, b, s, "你们这什么垃圾服务，我要投诉！")
		if !r.Escalated || reason(r) != dialog.ReasonNegativeSentiment || r.Customer.Meta.Sentiment > -dialog.DefaultAngerScore {
			t.Fatalf("escalated %v, reason %q, sentiment %.2f; replies %+v", r.Escalated, reason(r), r.Customer.Meta.Sentiment, r.Replies)
		}
		// The score is stored with the customer's message, for the agent.
		msgs, err := b.engine.Messages(t.Context(), s.ID, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if m := msgs[1]; m.Role != dialog.RoleCustomer || m.Meta.Sentiment != r.Customer.Meta.Sentiment {
			t.Fatalf("stored customer message %+v, want sentiment %.2f", m, r.Customer.Meta.Sentiment)
		}
		if req := b.queue.last(t); req.Reason != dialog.ReasonNegativeSentiment || req.Channel != "app" || req.Priority != 0 {
			t.Fatalf("request %+v", req)
		}
	})

	t.Run("TwoNegativeInARow", func(t *testing.T) {
		t.Parallel()
		b := setup(t, dialog.Config{EscalateAfter: 5})
		s := start(t, b, handoff.Profile{})
		if r := say(t, b, s, "物流太慢了"); r.Escalated || r.Customer.Meta.Sentiment > -dialog.DefaultNegativeScore {
			t.Fatalf("one negative message: escalated %v, sentiment %.2f", r.Escalated, r.Customer.Meta.Sentiment)
		}
		if r := say(t, b, s, "这个回答一点用都没有"); !r.Escalated || reason(r) != dialog.ReasonNegativeSentiment {
			t.Fatalf("second negative message: escalated %v, reason %q", r.Escalated, reason(r))
		}
	})

	t.Run("ACalmMessageEndsTheRun", func(t *testing.T) {
		t.Parallel()
		b := setup(t, dialog.Config{EscalateAfter: 5})
		s := start(t, b, handoff.Profile{})
		for _, msg := range []string{"物流太慢了", "运费多少钱？", "太麻烦了"} {
			if r := say(t, b, s, msg); r.Escalated {
				t.Fatalf("%q escalated (%q)", msg, reason(r))
			}
		}
	})

	t.Run("SentimentRulesOff", func(t *testing.T) {
		t.Parallel()
		b := setup(t, dialog.Config{AngerScore: -1, NegativeTurns: -1, EscalateAfter: 5})
		s := start(t, b, handoff.Profile{})
		for _, msg := range []string{"你们这什么垃圾服务，气死我了！", "I'm so disappointed", "this is terrible"} {
			if r := say(t, b, s, msg); r.Escalated {
				t.Fatalf("%q escalated (%q) with the sentiment rules off", msg, reason(r))
			}
		}
	})

	t.Run("LowConfidenceOff", func(t *testing.T) {
		t.Parallel()
		b := setup(t, dialog.Config{EscalateAfter: -1})
		s := start(t, b, handoff.Profile{})
		for _, msg := range []string{"今天天气怎么样", "给我讲个笑话吧", "紫色大象半夜唱歌", "blorp zzz quux"} {
			if r := say(t, b, s, msg); r.Escalated {
				t.Fatalf("%q escalated (%q) with EscalateAfter off", msg, reason(r))
			}
		}
	})

	t.Run("VerifiedVIPAtTheFirstMiss", func(t *testing.T) {
		t.Parallel()
		b := setup(t, dialog.Config{EscalateAfter: 3})
		s := start(t, b, b.engine.VerifyProfile(handoff.Profile{Name: "Li Lei", Tier: "vip"}, vip))
		if !s.Profile.VIP() {
			t.Fatalf("profile %+v is not a verified VIP", s.Profile)
		}
		r := say(t, b, s, "今天天气怎么样")
		if !r.Escalated || reason(r) != dialog.ReasonLowConfidence {
			t.Fatalf("a VIP's first miss: escalated %v, reason %q", r.Escalated, reason(r))
		}
		req := b.queue.last(t)
		if req.Priority != 10 || !req.Profile.VIP() || req.Profile.Name != "Li Lei" || req.Channel != "app" {
			t.Fatalf("request %+v, want priority 10, the profile and the channel", req)
		}
	})

	t.Run("UnverifiedVIPIsNoVIP", func(t *testing.T) {
		t.Parallel()
		b := setup(t, dialog.Config{EscalateAfter: 3})
		claimed := b.engine.VerifyProfile(handoff.Profile{Name: "Li Lei", Tier: "vip"}, strings.Repeat("0", 64))
		s := start(t, b, claimed)
		if s.Profile.Verified || s.Profile.VIP() {
			t.Fatalf("profile %+v verified with a wrong signature", s.Profile)
		}
		if r := say(t, b, s, "今天天气怎么样"); r.Escalated {
			t.Fatalf("an unverified VIP's first miss escalated (%q)", reason(r))
		}
		r := say(t, b, s, "转人工")
		if req := b.queue.last(t); !r.Escalated || req.Priority != 0 || req.Profile.Tier != "vip" || req.Profile.Verified {
			t.Fatalf("request %+v: want priority 0 and the unverified profile passed on", req)
		}
	})

	t.Run("VIPDirect", func(t *testing.T) {
		t.Parallel()
		b := setup(t, dialog.Config{VIPDirect: true})
		s := start(t, b, b.engine.VerifyProfile(handoff.Profile{Name: "Li Lei", Tier: "vip"}, vip))
		r := say(t, b, s, "运费多少钱？")
		if !r.Escalated || reason(r) != dialog.ReasonVIP || len(r.Replies) != 1 {
			t.Fatalf("a VIP with VIPDirect: escalated %v, reason %q, replies %+v", r.Escalated, reason(r), r.Replies)
		}
		// Others still talk to the bot.
		other := start(t, b, handoff.Profile{Tier: "vip"})
		if r := say(t, b, other, "运费多少钱？"); r.Escalated {
			t.Fatalf("an unverified VIP skipped the bot (%q)", reason(r))
		}
	})

	// The widget's button sends these: a person from the very first message.
	t.Run("APersonFromTheStart", func(t *testing.T) {
		t.Parallel()
		b := setup(t, dialog.Config{})
		for _, text := range []string{"转人工", "Talk to a person"} {
			s := start(t, b, handoff.Profile{})
			r := say(t, b, s, text)
			if !r.Escalated || reason(r) != dialog.ReasonCustomerAsked || r.Session.State != dialog.StateQueued {
				t.Fatalf("%q: escalated %v, reason %q, state %s", text, r.Escalated, reason(r), r.Session.State)
			}
		}
	})

	t.Run("SetProfile", func(t *testing.T) {
		t.Parallel()
		b := setup(t, dialog.Config{})
		s := start(t, b, handoff.Profile{})
		claim := handoff.Profile{Email: "li@example.com", Tier: "vip"}
		verified := b.engine.VerifyProfile(claim, dialog.SignProfile(secret, claim))
		for _, step := range []struct {
			p      handoff.Profile
			stored bool
			want   handoff.Profile
		}{
			{handoff.Profile{Name: "guest"}, true, handoff.Profile{Name: "guest"}},
			{verified, true, verified},
			{handoff.Profile{Name: "someone else", Tier: "vip"}, false, verified}, // unverified never replaces verified
			{handoff.Profile{Email: "li@example.com", Tier: "standard", Verified: true}, true, handoff.Profile{Email: "li@example.com", Tier: "standard", Verified: true}},
		} {
			stored, err := b.engine.SetProfile(t.Context(), s.ID, step.p)
			if err != nil || stored != step.stored {
				t.Fatalf("SetProfile(%+v) = %v, %v; want %v", step.p, stored, err, step.stored)
			}
			got, err := b.engine.Get(t.Context(), s.ID)
			if err != nil || got.Profile != step.want {
				t.Fatalf("after SetProfile(%+v): profile %+v, %v; want %+v", step.p, got.Profile, err, step.want)
			}
		}
		if _, err := b.engine.SetProfile(t.Context(), s.ID, handoff.Profile{Name: strings.Repeat("x", 201)}); err == nil {
			t.Fatal("SetProfile took a 201-byte name")
		}
	})

	// A webhook that fails after its retries: on_error: escalate hands over with the reason
	// webhook_failed; on_error naming an escalate step hands over with that step's reason.
	t.Run("WebhookFailed", func(t *testing.T) {
		t.Parallel()
		down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "down", http.StatusServiceUnavailable)
		}))
		t.Cleanup(down.Close)
		for _, tt := range []struct{ name, onError, extra, want string }{
			{"OnErrorEscalate", "escalate", "", dialog.ReasonWebhookFailed},
			{"OnErrorStep", "failed", "  - {id: failed, escalate: webhook_failed}\n", dialog.ReasonWebhookFailed},
			{"OnErrorStepOwnReason", "failed", "  - {id: failed, escalate: refund_service_down}\n", "refund_service_down"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				dir := t.TempDir()
				flow := "flow: refund_now\nversion: 1\ntrigger: {intents: [refund]}\nsteps:\n" +
					"  - {id: call, webhook: {url: '${KEFU_URL}/refund', retries: 1}, next: done, on_error: " + tt.onError + "}\n" +
					"  - {id: done, reply: {en: Done.}, end: true}\n" + tt.extra
				if err := os.WriteFile(filepath.Join(dir, "refund.yaml"), []byte(flow), 0o644); err != nil {
					t.Fatal(err)
				}
				flows, err := dialog.LoadFlows(dir, model.Labels())
				if err != nil {
					t.Fatal(err)
				}
				b := setup(t, dialog.Config{Flows: flows, Vars: map[string]string{"KEFU_URL": down.URL}})
				s := start(t, b, handoff.Profile{})
				r := say(t, b, s, "我要退款")
				if !r.Escalated || reason(r) != tt.want || r.Replies[len(r.Replies)-1].Meta.Flow != "refund_now" {
					t.Fatalf("escalated %v, reason %q (want %q), replies %+v", r.Escalated, reason(r), tt.want, r.Replies)
				}
				if req := b.queue.last(t); req.Reason != tt.want {
					t.Fatalf("request reason %q, want %q", req.Reason, tt.want)
				}
			})
		}
	})
}

// TestProfileSignature: the canonical form a site signs, and what verifies.
func TestProfileSignature(t *testing.T) {
	t.Parallel()
	p := handoff.Profile{Name: "李雷 <Li>", Email: "li@example.com", Tier: "vip", Verified: true}
	if got, want := string(dialog.CanonicalProfile(p)), `{"email":"li@example.com","name":"李雷 <Li>","tier":"vip"}`; got != want {
		t.Fatalf("CanonicalProfile = %s, want %s", got, want)
	}
	secret := []byte("s3cret")
	sig := dialog.SignProfile(secret, p)
	// What a site computes, here with openssl:
	//   printf '%s' '{"email":"li@example.com","name":"李雷 <Li>","tier":"vip"}' | openssl dgst -sha256 -hmac s3cret
	if want := "914f5b64ae68e372769019a9dc7103d9b62a079cc5f671e17a8f749fe3e13318"; sig != want {
		t.Fatalf("SignProfile = %s, want %s", sig, want)
	}
	e := dialog.NewEngine(nil, nil, nil, nil, dialog.Config{IdentitySecret: secret}, slog.New(slog.DiscardHandler))
	tests := []struct {
		name string
		p    handoff.Profile
		sig  string
		want bool
	}{
		{"signed", p, sig, true},
		{"upper-case hex", p, strings.ToUpper(sig), true},
		{"tier changed", handoff.Profile{Name: p.Name, Email: p.Email, Tier: "gold"}, sig, false},
		{"no signature", p, "", false},
		{"not hex", p, "zz" + sig[2:], false},
		{"short", p, sig[:10], false},
		{"another secret", p, dialog.SignProfile([]byte("other"), p), false},
	}
	for _, tt := range tests {
		if got := e.VerifyProfile(tt.p, tt.sig); got.Verified != tt.want {
			t.Errorf("%s: VerifyProfile(%+v, %q).Verified = %v, want %v", tt.name, tt.p, tt.sig, got.Verified, tt.want)
		}
	}
	unkeyed := dialog.NewEngine(nil, nil, nil, nil, dialog.Config{}, slog.New(slog.DiscardHandler))
	if unkeyed.VerifyProfile(p, dialog.SignProfile(nil, p)).Verified {
		t.Error("an engine without IdentitySecret verified a profile")
	}
}
