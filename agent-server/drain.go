package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/agentfleet/agent-server/internal/authz"
	"github.com/agentfleet/agent-server/internal/config"
)

// TokenEnv holds the API token agent-server drain uses, when set.
const TokenEnv = "AGENT_SERVER_TOKEN"

// drain asks the member the config describes, at its cluster.advertise
// address, to drain (POST /api/cluster/drain) and prints what it answered.
// The token is $AGENT_SERVER_TOKEN, else the file --token-file names, else
// the first configured API token holding cluster:write (or admin). Its
// secret is never printed.
func drain(confPath, base, tokenFile string, period time.Duration, stdout io.Writer) error {
	cfg, err := config.Load(confPath, config.Options{BaseDir: base})
	if err != nil {
		return err
	}
	if !cfg.Cluster.Enabled() {
		return errors.New("drain: this server is not a cluster member (no cluster.* keys): there is nothing to drain to")
	}
	token, err := drainToken(&cfg, tokenFile)
	if err != nil {
		return err
	}
	u, err := url.Parse(cfg.Cluster.Advertise + "/api/cluster/drain")
	if err != nil {
		return fmt.Errorf("drain: cluster.advertise: %w", err)
	}
	if period > 0 {
		u.RawQuery = url.Values{"period": {period.String()}}.Encode()
	}
	client := &http.Client{Timeout: 30 * time.Second}
	if cfg.Cluster.TLSCA != "" {
		pool, err := config.CertPool(cfg.Cluster.TLSCA)
		if err != nil {
			return fmt.Errorf("drain: cluster.tls_ca: %w", err)
		}
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var env struct {
		Msg     string `json:"msg"`
		Payload struct {
			Member    string    `json:"member"`
			StartedAt time.Time `json:"started_at"`
			Period    string    `json:"period"`
			Already   bool      `json:"already"`
			Sessions  int       `json:"sessions"`
			Tasks     int64     `json:"tasks_handed_over"`
		} `json:"payload"`
	}
	_ = json.Unmarshal(body, &env)
	if resp.StatusCode != http.StatusOK {
		msg := env.Msg
		if msg == "" {
			msg = strings.TrimSpace(string(body))
		}
		return fmt.Errorf("drain: %s answered %s: %s", u.Redacted(), resp.Status, msg)
	}
	p := env.Payload
	if p.Already {
		fmt.Fprintf(stdout, "member %s is draining already (since %s, over %s): %d agent sessions left\n",
			p.Member, p.StartedAt.Format(time.RFC3339), p.Period, p.Sessions)
		return nil
	}
	fmt.Fprintf(stdout, "member %s is draining: %d agent sessions closed over %s, %d tasks handed over; stop it once /api/cluster lists it with 0 sessions\n",
		p.Member, p.Sessions, p.Period, p.Tasks)
	return nil
}

// drainToken picks the token of agent-server drain.
func drainToken(cfg *config.Config, tokenFile string) (string, error) {
	if t := strings.TrimSpace(os.Getenv(TokenEnv)); t != "" {
		return t, nil
	}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return "", fmt.Errorf("drain: --token-file: %w", err)
		}
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
		return "", fmt.Errorf("drain: --token-file %s is empty", tokenFile)
	}
	toks, err := cfg.APITokens()
	if err != nil {
		return "", err
	}
	for _, t := range toks {
		if t.Selector == "" && (t.Expires.IsZero() || t.Expires.After(time.Now())) &&
			(slices.Contains(t.Scopes, authz.ClusterWrite) || slices.Contains(t.Scopes, authz.Admin)) {
			return t.Secret, nil
		}
	}
	return "", fmt.Errorf("drain: no token: set %s, give --token-file, or configure an API token with scope cluster:write", TokenEnv)
}
