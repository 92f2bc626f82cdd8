package cli

import (
	"net/http"
	"strings"
	"testing"

	"github.com/agentfleet/agentctl/internal/client"
)

// A 507 names the disk that is full: the server's cache_dir, or the
// agent's (its message is the agent's, "no space left on device").
func TestAPIHintInsufficientStorage(t *testing.T) {
	for _, tc := range []struct{ msg, want string }{
		{"insufficient storage: cache_dir is above cache_threshold, retry later", "the server's cache_dir is full"},
		{"upload /srv/x: after 65536 bytes: write /srv/.upload-1.part: no space left on device", "the agent's disk is full"},
	} {
		got := apiHint(&client.Error{Status: http.StatusInsufficientStorage, Msg: tc.msg, Method: "POST", Path: "/api/file/a/upload"})
		if !strings.Contains(got, tc.want) {
			t.Errorf("apiHint(507 %q) = %q, want it to say %q", tc.msg, got, tc.want)
		}
	}
}
