//go:build linux

package e2e

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"
)

// A script goes to the agent's temp dir, runs with its interpreter and
// arguments, and is removed afterwards (drm).
func TestScript(t *testing.T) {
	tmp := t.TempDir()
	e := newEnv(t, envOptions{agentConf: "file.temp_dir = " + tmp})
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fields := [][2]string{{"type", "sh"}, {"args", "a b"}, {"args", "$c"}, {"env", "E2E_X=y"}, {"timeout", "30"}}
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	fw, err := mw.CreateFormFile("file", "test.sh")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = fw.Write([]byte("for a in \"$@\"; do echo \"[$a]\"; done\necho $E2E_X\nls \"$(dirname \"$0\")\" | grep -c agentfleet-script\nexit 4\n"))
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", e.url+"/api/script/"+e.agentID+"/run", &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Payload struct {
			Code int    `json:"code"`
			Data []byte `json:"data"`
		} `json:"payload"`
		Msg string `json:"msg"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || resp.StatusCode != 200 {
		t.Fatalf("script: %d %s (%v)", resp.StatusCode, env.Msg, err)
	}
	if want := "[a b]\r\n[$c]\r\ny\r\n1\r\n"; env.Payload.Code != 4 || string(env.Payload.Data) != want {
		t.Errorf("script: code %d output %q, want 4 and %q", env.Payload.Code, env.Payload.Data, want)
	}
	eventually.Within(t, 30*time.Second, "the script to be removed", func() bool {
		entries, _ := os.ReadDir(tmp)
		for _, en := range entries {
			if strings.HasPrefix(en.Name(), "agentfleet-script") {
				return false
			}
		}
		return true
	})
}
