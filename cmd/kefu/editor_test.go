package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func login(t *testing.T, m *Main, email string) string {
	t.Helper()
	code, body := postJSON(t, m.URL+"/api/login", "", map[string]string{"email": email, "password": m.Config.DemoPassword})
	if code != http.StatusOK {
		t.Fatalf("login %s = %d %v", email, code, body)
	}
	return body["token"].(string)
}

func putJSON(t *testing.T, url, bearer string, body any) (int, map[string]any) {
	t.Helper()
	buf, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPut, url, bytes.NewReader(buf))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+bearer)
	return do(t, req)
}

// importFile posts an import and reads the NDJSON reply to its last line.
func importFile(t *testing.T, url, bearer, body string) (last map[string]any, progress int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+bearer)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("import = %d", res.StatusCode)
	}
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		last = map[string]any{}
		if err := json.Unmarshal(sc.Bytes(), &last); err != nil {
			t.Fatalf("import line %q: %v", sc.Text(), err)
		}
		if last["stage"] != nil {
			progress++
		}
	}
	return last, progress
}

// TestEditorAPI checks the knowledge editor's API through the real server: roles, the
// draft → publish path as customers see it, imports that are all or nothing, and feedback
// only on one's own answers.
func TestEditorAPI(t *testing.T) {
	t.Parallel()
	m := startMain(t)
	editor := login(t, m, DemoEditorEmail)
	agent := login(t, m, DemoAgentEmail)
	kb := m.URL + "/api/kb"

	for name, tc := range map[string]struct {
		bearer string
		want   int
	}{
		"no login":     {"", http.StatusUnauthorized},
		"forged token": {"kefu-forged-token", http.StatusUnauthorized},
		"agent role":   {agent, http.StatusForbidden},
		"editor":       {editor, http.StatusOK},
	} {
		if code, body := getJSON(t, kb+"/entries", tc.bearer); code != tc.want {
			t.Errorf("%s: GET /api/kb/entries = %d %v, want %d", name, code, body, tc.want)
		}
	}

	// Bad requests get clear errors and change nothing.
	for name, tc := range map[string]struct {
		code int
		got  func() (int, map[string]any)
	}{
		"malformed JSON": {http.StatusBadRequest, func() (int, map[string]any) {
			return postJSON(t, kb+"/entries/refund-time/zh/rollback", editor, `{"version":`)
		}},
		"unknown field": {http.StatusBadRequest, func() (int, map[string]any) {
			return putJSON(t, kb+"/entries/refund-time/zh/draft", editor, map[string]any{"answer": "x", "base_version": 2, "evil": 1})
		}},
		"unknown entry": {http.StatusNotFound, func() (int, map[string]any) { return getJSON(t, kb+"/entries/no-such/zh", editor) }},
		"stale version": {http.StatusConflict, func() (int, map[string]any) {
			return putJSON(t, kb+"/entries/refund-time/zh/draft", editor, map[string]any{"question": "q", "answer": "x", "base_version": 1})
		}},
		"key mismatch": {http.StatusBadRequest, func() (int, map[string]any) {
			return putJSON(t, kb+"/entries/refund-time/zh/draft", editor, map[string]any{"key": "other", "answer": "x", "base_version": 2})
		}},
		"bad diff version": {http.StatusBadRequest, func() (int, map[string]any) {
			return getJSON(t, kb+"/entries/refund-time/zh/diff?from=x&to=2", editor)
		}},
	} {
		code, body := tc.got()
		if code != tc.code || body["error"] == nil {
			t.Errorf("%s = %d %v, want %d with an error", name, code, body, tc.code)
		}
	}

	// Draft, publish: a customer sees the new answer only after publishing.
	code, hist := getJSON(t, kb+"/entries/refund-time/zh", editor)
	if code != http.StatusOK {
		t.Fatalf("history = %d %v", code, hist)
	}
	cur := hist["revisions"].([]any)[0].(map[string]any)
	const marker = "退款进度可在App查看。"
	code, rev := putJSON(t, kb+"/entries/refund-time/zh/draft", editor, map[string]any{
		"title": cur["title"], "question": cur["question"], "alternates": cur["alternates"],
		"answer": cur["answer"].(string) + marker, "base_version": cur["version"], "note": "api test"})
	if code != http.StatusOK || rev["state"] != "draft" {
		t.Fatalf("save draft = %d %v", code, rev)
	}
	ask := func(q string) string {
		t.Helper()
		id, token := newSession(t, m.URL)
		c := dial(t, m.URL, "/ws/customer")
		c.send(map[string]any{"type": "hello", "session_id": id, "token": token})
		c.expect("welcome", func(f frameMsg) bool { return f.Type == "welcome" })
		c.send(map[string]any{"type": "message", "client_id": "q1", "text": q})
		return c.expect("an answer with a source", func(f frameMsg) bool {
			return f.Type == "message" && f.chat(t).Role == "bot" && len(f.chat(t).Meta.Sources) > 0
		}).chat(t).Text
	}
	if got := ask("退款多久到账？"); strings.Contains(got, marker) {
		t.Fatal("a customer sees an unpublished draft")
	}
	if code, body := postJSON(t, kb+"/entries/refund-time/zh/publish", editor, nil); code != http.StatusOK {
		t.Fatalf("publish = %d %v", code, body)
	}
	if got := ask("退款多久到账？"); !strings.Contains(got, marker) {
		t.Fatalf("after publish the customer got %q", got)
	}

	// An import with a bad row imports nothing and names the line; a good one streams progress.
	_, before := getJSON(t, kb+"/entries?q=imp-", editor)
	bad := `{"id":"imp-1","question":"礼品卡能退吗？","answer":"礼品卡售出后不退不换。"}
{"id":"imp-2","question":"","answer":"缺问题"}
`
	last, _ := importFile(t, kb+"/import?format=jsonl", editor, bad)
	errs, _ := last["errors"].([]any)
	if len(errs) != 1 || errs[0].(map[string]any)["line"].(float64) != 2 || last["imported"].(float64) != 0 {
		t.Fatalf("bad import = %v, want one error on line 2", last)
	}
	_, after := getJSON(t, kb+"/entries?q=imp-", editor)
	if before["total"] != after["total"] {
		t.Fatalf("a rejected import stored entries: %v → %v", before["total"], after["total"])
	}
	good := "id,question,answer,language\nimp-1,Can gift cards be refunded?,Gift cards cannot be refunded.,en\nimp-2,Do gift cards expire?,Gift cards are valid for 3 years.,en\n"
	last, progress := importFile(t, kb+"/import?format=csv", editor, good)
	if last["imported"].(float64) != 2 || progress == 0 {
		t.Fatalf("good import = %v (progress lines %d)", last, progress)
	}
	if _, list := getJSON(t, kb+"/entries?q=imp-&language=en", editor); list["total"].(float64) != 2 {
		t.Fatalf("imported entries listed: %v", list["total"])
	}

	// Feedback: on one's own answer only, a vote of ±1.
	id, token := newSession(t, m.URL)
	c := dial(t, m.URL, "/ws/customer")
	c.send(map[string]any{"type": "hello", "session_id": id, "token": token})
	c.expect("welcome", func(f frameMsg) bool { return f.Type == "welcome" })
	c.send(map[string]any{"type": "message", "client_id": "q1", "text": "运费怎么算？"})
	answer := c.expect("an answer", func(f frameMsg) bool {
		return f.Type == "message" && f.chat(t).Role == "bot" && len(f.chat(t).Meta.Sources) > 0
	}).chat(t)
	other, otherToken := newSession(t, m.URL)
	fb := func(session int64, tok string, body any) int {
		code, _ := postJSON(t, m.URL+"/api/sessions/"+strconv.FormatInt(session, 10)+"/feedback", tok, body)
		return code
	}
	for name, tc := range map[string]struct {
		code int
		got  int
	}{
		"own answer":          {http.StatusNoContent, fb(id, token, map[string]any{"seq": answer.Seq, "vote": 1})},
		"another's session":   {http.StatusNotFound, fb(id, otherToken, map[string]any{"seq": answer.Seq, "vote": 1})},
		"not an answer":       {http.StatusNotFound, fb(id, token, map[string]any{"seq": answer.Seq - 1, "vote": 1})},
		"vote out of range":   {http.StatusBadRequest, fb(id, token, map[string]any{"seq": answer.Seq, "vote": 3})},
		"empty other session": {http.StatusNotFound, fb(other, otherToken, map[string]any{"seq": 1, "vote": 1})},
	} {
		if tc.got != tc.code {
			t.Errorf("feedback %s = %d, want %d", name, tc.got, tc.code)
		}
	}
	// Usage is written in the background: the answer's hit and the vote show in the list.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, list := getJSON(t, kb+"/entries?q=shipping-fee&language=zh", editor)
		e := list["entries"].([]any)[0].(map[string]any)
		if e["hits"].(float64) >= 1 && e["up"].(float64) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hits and votes not listed: %v", e)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
