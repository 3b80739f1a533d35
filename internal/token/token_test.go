package token_test

import (
	"bytes"
	"testing"

	"github.com/kefu-dev/kefu/internal/token"
)

func TestNew(t *testing.T) {
	t.Parallel()
	a, ha := token.New()
	b, _ := token.New()
	if len(a) != 43 || a == b || !bytes.Equal(ha, token.Hash(a)) || len(ha) != 32 {
		t.Fatalf("New() = %q (hash %x), then %q", a, ha, b)
	}
}
