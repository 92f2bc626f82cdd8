package cluster

import "testing"

func TestBalance(t *testing.T) {
	live := func(id string, n int) Load {
		return Load{ID: id, Advertise: "http://" + id + ":1", Sessions: n, Live: true}
	}
	dead := func(id string, n int) Load { l := live(id, n); l.Live = false; return l }
	draining := func(id string, n int) Load { l := live(id, n); l.Draining = true; return l }
	noAddr := func(id string, n int) Load { l := live(id, n); l.Advertise = ""; return l }
	for _, c := range []struct {
		name    string
		self    int
		drain   bool
		members []Load
		slack   int
		want    string // "" keeps the handshake
	}{
		{"alone", 100, false, []Load{live("a", 100)}, 0, ""},
		{"no members listed", 5, false, nil, 0, ""},
		{"balanced", 10, false, []Load{live("a", 0), live("b", 10), live("c", 10)}, 0, ""},
		// share 10, band edge 11: 11 is within, 12 is over.
		{"at the band edge", 11, false, []Load{live("b", 10), live("c", 9)}, 0, ""},
		{"just over the band", 12, false, []Load{live("b", 9), live("c", 9)}, 0, "b"},
		{"least loaded wins", 30, false, []Load{live("b", 20), live("c", 10)}, 0, "c"},
		{"tie by id", 30, false, []Load{live("c", 10), live("b", 10)}, 0, "b"},
		{"own row ignored", 30, false, []Load{live("a", 0), live("b", 10), live("c", 20)}, 0, "b"},
		{"not to a dead member", 30, false, []Load{dead("b", 0), live("c", 20)}, 0, "c"},
		{"dead ones do not count in the share", 12, false, []Load{dead("b", 0), live("c", 11)}, 0, ""},
		{"only dead others", 30, false, []Load{dead("b", 0), dead("c", 0)}, 0, ""},
		{"not to a draining member", 30, false, []Load{draining("b", 0), live("c", 20)}, 0, "c"},
		{"not to a member without address", 30, false, []Load{noAddr("b", 0), live("c", 20)}, 0, "c"},
		{"none better", 2, false, []Load{live("b", 2), live("c", 2)}, 0, ""},
		{"small fleet", 2, false, []Load{live("b", 0)}, 0, "b"},
		{"one each", 1, false, []Load{live("b", 0)}, 0, "b"},
		{"empty fleet", 0, false, []Load{live("b", 0)}, 0, ""},
		// Slack 10: share 100, band edge 110, slack edge 110.
		{"slack: within", 109, false, []Load{live("b", 95), live("c", 96)}, 10, ""},
		{"slack: at its edge", 110, false, []Load{live("b", 95), live("c", 95)}, 10, ""},
		{"slack: over", 111, false, []Load{live("b", 94), live("c", 95)}, 10, "b"},
		{"slack: over the band, within the slack", 12, false, []Load{live("b", 9), live("c", 9)}, 10, ""},
		{"draining: always away", 0, true, []Load{live("b", 50), live("c", 40)}, 10, "c"},
		{"draining: nobody to go to", 10, true, []Load{dead("b", 0), draining("c", 0)}, 0, ""},
	} {
		got, ok := Balance("a", c.self, c.drain, c.members, Band, c.slack)
		if ok != (c.want != "") || got.ID != c.want {
			t.Errorf("%s: Balance = %q, %v; want %q", c.name, got.ID, ok, c.want)
		}
		if ok && got.ID == "a" {
			t.Errorf("%s: redirected to itself", c.name)
		}
	}
}

func TestRedirectAddress(t *testing.T) {
	for in, want := range map[string]string{
		"http://10.0.0.5:13081":   "10.0.0.5:13081",
		"https://as1.example:443": "wss://as1.example:443",
		"10.0.0.5:13081":          "",
		"ftp://x:1":               "",
		"":                        "",
	} {
		if got := RedirectAddress(in); got != want {
			t.Errorf("RedirectAddress(%q) = %q, want %q", in, got, want)
		}
	}
}
