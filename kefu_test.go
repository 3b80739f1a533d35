package kefu_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/kefu-dev/kefu"
)

func TestCodeOf(t *testing.T) {
	t.Parallel()
	base := kefu.Errorf("retrieval.Publish", kefu.NotFound, "no entry %d", 7)
	tests := []struct {
		name string
		err  error
		code kefu.Code
		msg  string
	}{
		{"nil", nil, "", ""},
		{"plain", errors.New("boom"), kefu.Internal, ""},
		{"direct", base, kefu.NotFound, "no entry 7"},
		{"inherits", kefu.E("api.get", "", base), kefu.NotFound, "no entry 7"},
		{"outer wins", kefu.E("api.get", kefu.Conflict, base), kefu.Conflict, "no entry 7"},
		{"wrapped by fmt", fmt.Errorf("ctx: %w", kefu.E("x", "", base)), kefu.NotFound, "no entry 7"},
		{"empty code no cause", kefu.E("x", "", nil), kefu.Internal, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := kefu.CodeOf(tt.err); got != tt.code {
				t.Errorf("CodeOf(%v) = %q, want %q", tt.err, got, tt.code)
			}
			if got := kefu.MessageOf(tt.err); got != tt.msg {
				t.Errorf("MessageOf(%v) = %q, want %q", tt.err, got, tt.msg)
			}
		})
	}
}
