package dialog

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"unicode/utf8"

	"github.com/kefu-dev/kefu"
	"github.com/kefu-dev/kefu/handoff"
)

// A customer's profile comes from the site that embeds the widget, which knows who is logged
// in. The site signs it with a secret it shares with Kefu (Config.IdentitySecret,
// KEFU_IDENTITY_SECRET): the signature is the hex HMAC-SHA256 of the profile's canonical JSON
// (CanonicalProfile). A profile whose signature matches is Verified; any other is kept, for
// the agent to read, but unverified, and an unverified profile is never a VIP.
//
// The canonical JSON has the fields email, name, product, region and tier, in that
// (alphabetical) order, those that are empty left out, no spaces, and no escaping beyond what
// JSON requires (UTF-8 as it is, "<" not \u003c):
//
//	{"email":"li@example.com","name":"李雷","tier":"vip"}
//
// In JavaScript, for a profile p of those five string fields:
//
//	JSON.stringify(Object.fromEntries(Object.entries(p).filter(([, v]) => v).sort()))
//
// and in Python: json.dumps({k: v for k, v in p.items() if v}, sort_keys=True,
// separators=(",", ":"), ensure_ascii=False).
//
// A signature does not expire and is not bound to a session: a site that cares signs only
// over HTTPS and rotates the secret like any other.

// maxProfileField bounds each field of a profile, in bytes.
const maxProfileField = 200

// CanonicalProfile is the JSON a site signs: see the comment at the top of profile.go.
func CanonicalProfile(p handoff.Profile) []byte {
	c := struct {
		Email   string `json:"email,omitempty"`
		Name    string `json:"name,omitempty"`
		Product string `json:"product,omitempty"`
		Region  string `json:"region,omitempty"`
		Tier    string `json:"tier,omitempty"`
	}{p.Email, p.Name, p.Product, p.Region, p.Tier}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(c) // strings only: cannot fail
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// SignProfile is the signature of p under secret: what the embedding site computes.
func SignProfile(secret []byte, p handoff.Profile) string {
	m := hmac.New(sha256.New, secret)
	m.Write(CanonicalProfile(p))
	return hex.EncodeToString(m.Sum(nil))
}

// VerifyProfile returns p with Verified set when signature (hex, either case) is p's
// signature under the engine's IdentitySecret, compared in constant time, and cleared
// otherwise: without a secret nothing is verified.
func (e *Engine) VerifyProfile(p handoff.Profile, signature string) handoff.Profile {
	p.Verified = false
	secret := e.cfg.IdentitySecret
	if len(secret) == 0 || signature == "" {
		return p
	}
	got, err := hex.DecodeString(signature)
	if err != nil {
		return p
	}
	m := hmac.New(sha256.New, secret)
	m.Write(CanonicalProfile(p))
	p.Verified = hmac.Equal(got, m.Sum(nil))
	return p
}

// checkProfile refuses a profile with a field that is too long or not UTF-8 (Invalid).
func checkProfile(op string, p handoff.Profile) error {
	for _, f := range []string{p.Name, p.Email, p.Tier, p.Region, p.Product} {
		if len(f) > maxProfileField || !utf8.ValidString(f) {
			return kefu.Errorf(op, kefu.Invalid, "a profile field is longer than %d bytes or not UTF-8", maxProfileField)
		}
	}
	return nil
}

// profileJSON is a profile as the profile column stores it: NULL for none.
func profileJSON(p handoff.Profile) ([]byte, error) {
	if p == (handoff.Profile{}) {
		return nil, nil
	}
	return json.Marshal(p)
}

// SetProfile records who the customer of a session is, as VerifyProfile returned it. An
// unverified profile never replaces a verified one (a customer cannot undo what the site
// vouched for, nor pass for someone else); SetProfile then reports false. It returns
// Invalid for a field longer than 200 bytes.
func (e *Engine) SetProfile(ctx context.Context, sessionID int64, p handoff.Profile) (bool, error) {
	const op = "dialog.SetProfile"
	if err := checkProfile(op, p); err != nil {
		return false, err
	}
	b, err := profileJSON(p)
	if err != nil {
		return false, kefu.E(op, kefu.Internal, err)
	}
	const q = `
UPDATE dialog_session SET profile = $2, updated_at = now()
WHERE id = $1 AND ($3 OR NOT coalesce((profile->>'verified')::boolean, false))`
	tag, err := e.pool.Exec(ctx, q, sessionID, b, p.Verified)
	if err != nil {
		return false, kefu.E(op, kefu.Unavailable, err)
	}
	return tag.RowsAffected() == 1, nil
}
