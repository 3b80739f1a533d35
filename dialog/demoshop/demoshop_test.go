package demoshop_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kefu-dev/kefu/dialog"
	"github.com/kefu-dev/kefu/dialog/demoshop"
)

// start serves a fresh shop; with a secret, requests must be signed.
func start(t *testing.T, secret []byte) *httptest.Server {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := httptest.NewServer(demoshop.New(secret, log).Handler())
	t.Cleanup(srv.Close)
	return srv
}

// do sends an unsigned request and decodes the JSON answer.
func do(t *testing.T, srv *httptest.Server, method, path, body string, header ...string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("%s %s: %d, not JSON: %v", method, path, resp.StatusCode, err)
	}
	return resp.StatusCode, v
}

// slotsBody is the body the dialog engine posts.
func slotsBody(slots map[string]string) string {
	b, _ := json.Marshal(map[string]any{"session_id": 42, "flow": "demo", "step": "submit", "language": "zh", "slots": slots})
	return string(b)
}

// want checks fields of a decoded answer.
func want(t *testing.T, what string, got map[string]any, fields map[string]any) {
	t.Helper()
	for k, w := range fields {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("%s: %s = %#v, want %#v (answer %v)", what, k, g, w, got)
		}
	}
}

func TestGetOrder(t *testing.T) {
	t.Parallel()
	srv := start(t, nil)

	code, got := do(t, srv, http.MethodGet, "/demo/orders/so20261127001", "")
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	want(t, "shipped order", got, map[string]any{
		"found": true, "number": "SO20261127001", "status": "shipped", "status_zh": "已发货", "status_en": "Shipped",
		"carrier": "SF Express", "tracking": "SF1234567890", "eta": "2026-11-29", "total": "59.90 CNY",
		"item_en": "T-shirt", "item_zh": "T恤", "can_cancel": false, "can_change_address": false,
	})
	if a, _ := got["address"].(string); !strings.Contains(a, "上海") {
		t.Errorf("address %q", a)
	}

	for number, fields := range map[string]map[string]any{
		"SO20261127002": {"status": "processing", "status_zh": "处理中", "total": "199.00 CNY", "item_zh": "跑鞋", "can_cancel": true, "can_change_address": true},
		"SO20261120003": {"status": "delivered", "status_zh": "已签收", "total": "89.00 CNY", "item_zh": "双肩包", "can_cancel": false},
		"a-1029":        {"number": "A-1029", "status": "processing", "total": "35.50 USD", "item_en": "phone case", "item_zh": "手机壳", "can_cancel": true},
		"SO20261101004": {"status": "cancelled", "status_zh": "已取消", "can_cancel": false, "can_change_address": false},
	} {
		_, got := do(t, srv, http.MethodGet, "/demo/orders/"+number, "")
		want(t, number, got, fields)
		if a, _ := got["address"].(string); a == "" {
			t.Errorf("%s has no address", number)
		}
	}

	code, got = do(t, srv, http.MethodGet, "/demo/orders/so404", "")
	if code != http.StatusOK || len(got) != 2 {
		t.Errorf("unknown order: %d %v", code, got)
	}
	want(t, "unknown order", got, map[string]any{"found": false, "number": "SO404"})
}

func TestRefund(t *testing.T) {
	t.Parallel()
	srv := start(t, nil)

	_, got := do(t, srv, http.MethodPost, "/demo/refunds", slotsBody(map[string]string{"order_number": "so20261127001", "reason": "size"}))
	want(t, "first refund", got, map[string]any{"ok": true, "id": "RF-100001", "amount": "59.90 CNY"})
	_, got = do(t, srv, http.MethodPost, "/demo/refunds", slotsBody(map[string]string{"order_number": "A-1029", "reason": "quality"}))
	want(t, "second refund", got, map[string]any{"ok": true, "id": "RF-100002", "amount": "35.50 USD"})

	code, got := do(t, srv, http.MethodPost, "/demo/refunds", slotsBody(map[string]string{"order_number": "SO000"}))
	if code != http.StatusOK {
		t.Errorf("unknown order: status %d", code)
	}
	want(t, "unknown order", got, map[string]any{"ok": false, "error": "order not found"})
	if _, ok := got["id"]; ok {
		t.Errorf("a refund id for an unknown order: %v", got)
	}
	_, got = do(t, srv, http.MethodPost, "/demo/refunds", `{"slots": {}}`)
	want(t, "no order number", got, map[string]any{"ok": false})
}

func TestRefundIdempotent(t *testing.T) {
	t.Parallel()
	srv := start(t, nil)
	body := slotsBody(map[string]string{"order_number": "SO20261127002", "reason": "changed_mind"})

	_, first := do(t, srv, http.MethodPost, "/demo/refunds", body, dialog.HeaderIdempotencyKey, "key-1")
	_, again := do(t, srv, http.MethodPost, "/demo/refunds", body, dialog.HeaderIdempotencyKey, "key-1")
	want(t, "first", first, map[string]any{"ok": true, "id": "RF-100001", "amount": "199.00 CNY"})
	want(t, "repeat", again, first)

	_, other := do(t, srv, http.MethodPost, "/demo/refunds", body, dialog.HeaderIdempotencyKey, "key-2")
	want(t, "another key", other, map[string]any{"ok": true, "id": "RF-100002"})
	_, unkeyed := do(t, srv, http.MethodPost, "/demo/refunds", body)
	want(t, "no key", unkeyed, map[string]any{"ok": true, "id": "RF-100003"})
}

// A refund whose answer is lost on the way back: the client retries with the same
// Idempotency-Key and gets the refund already filed, not a second one.
func TestRefundRetriedThroughWebhookClient(t *testing.T) {
	t.Parallel()
	secret := []byte("demo-secret")
	shop := demoshop.New(secret, slog.New(slog.NewTextHandler(t.Output(), nil))).Handler()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			shop.ServeHTTP(httptest.NewRecorder(), r) // handled, but the answer is lost
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		shop.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	c := &dialog.WebhookClient{Secret: secret, Log: slog.New(slog.NewTextHandler(t.Output(), nil))}
	body, status, err := c.Call(t.Context(), dialog.WebhookCall{
		URL:     srv.URL + "/demo/refunds",
		Body:    map[string]any{"session_id": 1, "flow": "refund_request", "step": "submit", "language": "en", "slots": map[string]string{"order_number": "SO20261127001", "reason": "size"}},
		Retries: 2,
	})
	if err != nil || status != http.StatusOK || calls.Load() != 2 {
		t.Fatalf("Call = %d, %v after %d calls", status, err, calls.Load())
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want(t, "retried refund", got, map[string]any{"ok": true, "id": "RF-100001"})
}

func TestCancel(t *testing.T) {
	t.Parallel()
	srv := start(t, nil)

	_, got := do(t, srv, http.MethodPost, "/demo/orders/so20261127002/cancel", slotsBody(nil))
	want(t, "processing order", got, map[string]any{"ok": true, "status": "cancelled"})
	_, got = do(t, srv, http.MethodGet, "/demo/orders/SO20261127002", "")
	want(t, "after cancelling", got, map[string]any{"status": "cancelled", "status_zh": "已取消", "can_cancel": false, "can_change_address": false})

	_, got = do(t, srv, http.MethodPost, "/demo/orders/SO20261127002/cancel", "")
	want(t, "cancelled twice", got, map[string]any{"ok": false, "status": "cancelled"})

	for number, status := range map[string]string{"SO20261127001": "shipped", "SO20261120003": "delivered"} {
		_, got = do(t, srv, http.MethodPost, "/demo/orders/"+number+"/cancel", "")
		want(t, number, got, map[string]any{"ok": false, "status": status})
		en, _ := got["reason_en"].(string)
		zh, _ := got["reason_zh"].(string)
		if !strings.Contains(en, status) || !strings.Contains(zh, "无法取消") {
			t.Errorf("%s: reasons %q / %q", number, en, zh)
		}
	}

	_, got = do(t, srv, http.MethodPost, "/demo/orders/NOPE/cancel", "")
	want(t, "unknown order", got, map[string]any{"ok": false, "error": "order not found"})
}

func TestChangeAddress(t *testing.T) {
	t.Parallel()
	srv := start(t, nil)
	const addr = "Alex Morgan, 9 Quay Street, Auckland 1010, New Zealand"

	_, got := do(t, srv, http.MethodPost, "/demo/orders/a-1029/address", slotsBody(map[string]string{"address": "  " + addr + " "}))
	want(t, "processing order", got, map[string]any{"ok": true, "address": addr})
	_, got = do(t, srv, http.MethodGet, "/demo/orders/A-1029", "")
	want(t, "after the change", got, map[string]any{"address": addr})

	_, got = do(t, srv, http.MethodPost, "/demo/orders/SO20261127001/address", slotsBody(map[string]string{"address": "杭州市西湖区"}))
	want(t, "shipped order", got, map[string]any{"ok": false, "status": "shipped"})
	if got["reason_en"] == nil || got["reason_zh"] == nil {
		t.Errorf("no reasons: %v", got)
	}
	_, got = do(t, srv, http.MethodGet, "/demo/orders/SO20261127001", "")
	if a, _ := got["address"].(string); strings.Contains(a, "杭州") {
		t.Errorf("a shipped order's address changed: %q", a)
	}

	_, got = do(t, srv, http.MethodPost, "/demo/orders/SO20261127002/address", slotsBody(map[string]string{"address": "  "}))
	want(t, "empty address", got, map[string]any{"ok": false})
	_, got = do(t, srv, http.MethodPost, "/demo/orders/SO20261127002/address", slotsBody(map[string]string{"address": strings.Repeat("长", 201)}))
	want(t, "long address", got, map[string]any{"ok": false})
	_, got = do(t, srv, http.MethodPost, "/demo/orders/NOPE/address", slotsBody(map[string]string{"address": addr}))
	want(t, "unknown order", got, map[string]any{"ok": false, "error": "order not found"})
}

func TestValidateOrder(t *testing.T) {
	t.Parallel()
	srv := start(t, nil)

	_, got := do(t, srv, http.MethodPost, "/demo/validate/order", `{"value": " so20261120003 "}`)
	want(t, "existing order", got, map[string]any{"valid": true, "value": "SO20261120003"})
	_, got = do(t, srv, http.MethodPost, "/demo/validate/order", `{"value": "so1"}`)
	want(t, "unknown order", got, map[string]any{"valid": false, "value": "SO1"})
	for _, k := range []string{"message_en", "message_zh"} {
		if s, _ := got[k].(string); !strings.Contains(s, "SO1") {
			t.Errorf("%s = %q", k, s)
		}
	}
	_, got = do(t, srv, http.MethodPost, "/demo/validate/order", `{}`)
	want(t, "no value", got, map[string]any{"valid": false, "value": ""})
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	srv := start(t, nil)
	for _, path := range []string{"/demo/refunds", "/demo/orders/A-1029/address", "/demo/validate/order"} {
		for _, body := range []string{"", "{bad", `{"slots": "x", "value": 1}`, `{} {}`, `[1]`} {
			code, got := do(t, srv, http.MethodPost, path, body)
			if code != http.StatusBadRequest || got["error"] == nil {
				t.Errorf("%s %q: %d %v, want 400 with an error", path, body, code, got)
			}
		}
	}
	huge := `{"value": "` + strings.Repeat("x", 70<<10) + `"}`
	if code, got := do(t, srv, http.MethodPost, "/demo/validate/order", huge); code != http.StatusRequestEntityTooLarge || got["error"] == nil {
		t.Errorf("a 70 KiB body: %d %v", code, got)
	}
}

func TestSignatureRequired(t *testing.T) {
	t.Parallel()
	secret := []byte("demo-secret")
	srv := start(t, secret)
	log := slog.New(slog.NewTextHandler(t.Output(), nil))

	// Unsigned: refused, in JSON.
	code, got := do(t, srv, http.MethodGet, "/demo/orders/A-1029", "")
	if code != http.StatusUnauthorized || got["error"] == nil {
		t.Errorf("unsigned: %d %v", code, got)
	}
	code, _ = do(t, srv, http.MethodPost, "/demo/orders/A-1029/cancel", "", dialog.HeaderWebhookTimestamp, "1", dialog.HeaderWebhookSignature, "v1=00")
	if code != http.StatusUnauthorized {
		t.Errorf("forged: %d", code)
	}

	// Signed with another secret: refused, and the client does not retry a 401.
	wrong := &dialog.WebhookClient{Secret: []byte("not-the-secret"), Log: log}
	_, status, err := wrong.Call(t.Context(), dialog.WebhookCall{Method: http.MethodGet, URL: srv.URL + "/demo/orders/A-1029", Retries: 2})
	if err == nil || status != http.StatusUnauthorized || !strings.Contains(err.Error(), "(1 attempt)") {
		t.Errorf("wrong secret: %d, %v", status, err)
	}

	// Signed: served, GET and POST.
	c := &dialog.WebhookClient{Secret: secret, Log: log}
	body, status, err := c.Call(t.Context(), dialog.WebhookCall{Method: http.MethodGet, URL: srv.URL + "/demo/orders/A-1029"})
	if err != nil || status != http.StatusOK || !strings.Contains(string(body), `"found":true`) {
		t.Errorf("signed GET: %d %s %v", status, body, err)
	}
	body, status, err = c.Call(t.Context(), dialog.WebhookCall{URL: srv.URL + "/demo/orders/A-1029/cancel", Body: map[string]any{"slots": map[string]string{}}})
	if err != nil || status != http.StatusOK || !strings.Contains(string(body), `"ok":true`) {
		t.Errorf("signed POST: %d %s %v", status, body, err)
	}
}

func TestConcurrentCancel(t *testing.T) {
	t.Parallel()
	srv := start(t, nil)
	const n = 20
	var (
		wg        sync.WaitGroup
		succeeded atomic.Int32
	)
	for i := range n {
		wg.Go(func() {
			path := "/demo/orders/SO20261127002/cancel"
			if i%2 == 1 {
				path = "/demo/orders/so20261127002/cancel" // the same order, spelled differently
			}
			req, _ := http.NewRequest(http.MethodPost, srv.URL+path, nil)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var got struct {
				OK     bool   `json:"ok"`
				Status string `json:"status"`
			}
			b, _ := io.ReadAll(resp.Body)
			if err := json.Unmarshal(b, &got); err != nil || got.Status != "cancelled" {
				t.Errorf("answer %s (%v)", b, err)
			}
			if got.OK {
				succeeded.Add(1)
			}
		})
	}
	wg.Wait()
	if got := succeeded.Load(); got != 1 {
		t.Errorf("%d of %d concurrent cancels succeeded, want exactly 1", got, n)
	}
}

// Each shop has its own state: a cancellation in one is not seen by another.
func TestShopsIndependent(t *testing.T) {
	t.Parallel()
	a, b := start(t, nil), start(t, nil)
	do(t, a, http.MethodPost, "/demo/orders/A-1029/cancel", "")
	_, got := do(t, b, http.MethodGet, "/demo/orders/A-1029", "")
	want(t, "other shop", got, map[string]any{"status": "processing"})
}
