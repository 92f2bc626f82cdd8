package files

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/agentfleet/libagent/protocol"
)

// Fetch GETs url with the header X-Token: token (the upload-by-URI flow)
// and returns the body and its length (-1 when the server did not say).
// The caller closes the body. A status other than 200 is an error that
// quotes the start of the server's answer.
func Fetch(ctx context.Context, client *http.Client, url, token string) (io.ReadCloser, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("fetch: %w", err)
	}
	req.Header.Set(protocol.TokenHeader, token)
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("fetch: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		resp.Body.Close()
		return nil, 0, fmt.Errorf("fetch %s: %s: %s", req.URL.Redacted(), resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp.Body, resp.ContentLength, nil
}
