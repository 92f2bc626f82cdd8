package installsvc

import (
	"errors"
	"strings"
	"testing"

	"github.com/agentfleet/agent-server/internal/fault"
)

var specCases = []struct {
	spec  Spec
	param string // "" = valid
}{
	{Spec{URL: "https://h/a.deb"}, ""},
	{Spec{URI: "app-1.0.tar.gz", Dir: "/opt/app"}, ""},
	{Spec{URI: "app.msi", Dir: `C:\Program Files\App`}, ""},
	{Spec{URL: "http://h/x", Kind: "RPM", Auth: "sudo", User: "deploy", Pass: "$0$pw", Deps: true, Timeout: 86400}, ""},
	{Spec{}, "uri"},
	{Spec{URI: "a.deb", URL: "https://h/a.deb"}, "uri"},
	{Spec{URI: "../a.deb"}, "uri"},
	{Spec{URL: "file:///etc/passwd"}, "url"},
	{Spec{URL: "https:///a.deb"}, "url"},
	{Spec{URL: "https://h/a.deb", SHA256: "xyz"}, "sha256"},
	{Spec{URL: "https://h/a.deb", SHA256: strings.Repeat("a", 63)}, "sha256"},
	{Spec{URL: "https://h/a", Kind: "apk"}, "kind"},
	{Spec{URL: "https://h/a.tar.bz2"}, "dir"},
	{Spec{URL: "https://h/a.zip", Dir: "rel/dir"}, "dir"},
	{Spec{URL: "https://h/a.deb", Timeout: -5}, "timeout"},
	{Spec{URL: "https://h/a.deb", Timeout: 86401}, "timeout"},
	{Spec{URL: "https://h/a.zip", Dir: "/x", Deps: true}, "deps"},
	{Spec{URL: "https://h/a.deb", Auth: "doas"}, "auth"},
	{Spec{URL: "https://h/a.deb", User: "root"}, "auth"},
	{Spec{URL: "https://h/a.tgz", Dir: "/x", Auth: "su", User: "deploy"}, ""}, // unpacked as deploy
	{Spec{URL: "https://h/a.deb", Auth: "su", User: "-rf"}, "user"},
	{Spec{URL: "https://h/a.deb", Name: "x/y.deb"}, "name"},
}

func TestSpecCheck(t *testing.T) {
	for _, tc := range specCases {
		err := tc.spec.Check()
		if tc.param == "" {
			if err != nil {
				t.Errorf("%+v: %v", tc.spec, err)
			}
			continue
		}
		fe, ok := fault.As(err)
		if !ok || !errors.Is(err, ErrInvalid) || fe.Param != tc.param {
			t.Errorf("%+v: %v, want an invalid %s", tc.spec, err, tc.param)
		}
		if tc.spec.Pass != "" && strings.Contains(err.Error(), tc.spec.Pass) {
			t.Errorf("%+v: the error quotes the password", tc.spec)
		}
	}
}

// FuzzSpecCheck: any request is accepted or refused naming a parameter,
// never a panic, and the password is never quoted.
func FuzzSpecCheck(f *testing.F) {
	for _, tc := range specCases {
		s := tc.spec
		f.Add(s.URI, s.URL, s.SHA256, s.Name, s.Kind, s.Dir, s.Timeout, s.Auth, s.User, s.Deps)
	}
	f.Fuzz(func(t *testing.T, uri, url, sum, name, kind, dir string, timeout int, auth, user string, deps bool) {
		s := Spec{URI: uri, URL: url, SHA256: sum, Name: name, Kind: kind, Dir: dir, Timeout: timeout, Auth: auth, User: user, Pass: "$0$secret-pw", Deps: deps}
		err := s.Check()
		if err == nil {
			return
		}
		fe, ok := fault.As(err)
		if !ok || fe.Param == "" {
			t.Fatalf("%+v: %v names no parameter", s, err)
		}
		if strings.Contains(err.Error(), "secret-pw") {
			t.Fatalf("the error quotes the password: %v", err)
		}
	})
}
