package cluster

import (
	"net/url"
	"sort"
)

// Balancing (docs/cluster.md, "Balancing and drain"): a member holding
// more than its share of the fleet's sessions by more than Band answers
// new handshakes with a redirect to the least loaded member.

// Band is how far above its share (total sessions / live members) a member
// may hold sessions before it redirects new handshakes.
const Band = 0.10

// Slack is the fewest sessions above its share a member must hold before
// it redirects: a few agents more or less are not worth a reconnect, and
// the counts of the others are as old as their last renewal.
const Slack = 10

// Load is one member's load as the balancer sees it.
type Load struct {
	ID        string
	Advertise string // the member's cluster.advertise URL
	Sessions  int
	Live      bool // its lease runs
	Draining  bool // it takes no new sessions
}

// Balance decides whether a new handshake arriving at member self, which
// holds selfSessions sessions now, goes elsewhere: it returns the member
// to redirect it to and true, or false to keep it here. The others' loads
// come from members (self's row in it is ignored for the count: the live
// count is fresher). Only live, not draining members with an address that
// hold fewer sessions than self are targets; self never is. A member is
// over its share when selfSessions > share·(1+band), share being the
// sessions of the live members not draining divided by their number (self
// included), and holds at least slack sessions more than that share. A
// draining self redirects every handshake to the least loaded
// target, whatever the counts.
func Balance(self string, selfSessions int, selfDraining bool, members []Load, band float64, slack int) (Load, bool) {
	var targets []Load
	total, n := selfSessions, 0
	if !selfDraining {
		n = 1
	}
	for _, m := range members {
		if m.ID == self || !m.Live || m.Draining {
			continue
		}
		total += m.Sessions
		n++
		if m.Advertise != "" {
			targets = append(targets, m)
		}
	}
	if len(targets) == 0 {
		return Load{}, false
	}
	sort.Slice(targets, func(i, j int) bool {
		if targets[i].Sessions != targets[j].Sessions {
			return targets[i].Sessions < targets[j].Sessions
		}
		return targets[i].ID < targets[j].ID
	})
	best := targets[0]
	if selfDraining {
		return best, true
	}
	share := float64(total) / float64(n)
	if float64(selfSessions) <= share*(1+band) || float64(selfSessions)-share < float64(slack) || best.Sessions >= selfSessions {
		return Load{}, false
	}
	return best, true
}

// RedirectAddress turns a member's advertised URL into the server address
// of the handshake's redirect list: host:port for http (the agents' plain
// form), wss://host:port for https. "" when it cannot be read.
func RedirectAddress(advertise string) string {
	u, err := url.Parse(advertise)
	if err != nil || u.Host == "" {
		return ""
	}
	switch u.Scheme {
	case "http", "ws":
		return u.Host
	case "https", "wss":
		return "wss://" + u.Host
	}
	return ""
}
