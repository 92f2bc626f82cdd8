package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	japi "github.com/agentfleet/jkframe/api"
)

// Forwarding (docs/cluster.md, "Forwarding API calls to the owner"): a
// call of a route that reaches one agent, made to a member that does not
// hold the agent's session, is proxied as it is to the member that does,
// at its advertised address. The owner authenticates, authorizes, rate
// limits, serves and audits the call, so the status, headers and body are
// the owner's by construction; this member only relays the bytes as they
// come (no whole body is buffered: uploads, downloads, SSE and the shell's
// WebSocket stream through). A forwarded call carries
// HeaderForwardedBy and is never forwarded again: when its receiver no
// longer holds the agent but another member does, it answers 503 with
// Retry-After, and the client retries (the next try goes to the right
// member).

// HeaderForwardedBy names the member that forwarded a call.
const HeaderForwardedBy = "X-Agentserver-Forwarded-By"

// forwardRetryAfter is the Retry-After of a call that could not reach the
// agent's member, in seconds.
const forwardRetryAfter = "1"

type forwardKey struct{}

// forwardTarget is what the proxy's Rewrite needs of one call.
type forwardTarget struct {
	url    *url.URL
	owners *owners
	id     string // the agent or task
	member string
}

// owners finds the member a call is forwarded to: the one holding an
// agent's session, or the one running a task.
type owners struct {
	what   string // "agent" or "task", in messages
	held   string // how the owner relates to it, in messages
	lookup func(ctx context.Context, id string) (member, advertise string, ok bool, err error)
	forget func(id string)
}

func agentOwners(c Cluster) *owners {
	return &owners{what: "agent", held: "is connected to", forget: c.ForgetOwner,
		lookup: func(ctx context.Context, id string) (string, string, bool, error) {
			o, ok, err := c.Owner(ctx, id)
			return o.Member, o.Advertise, ok, err
		}}
}

func taskOwners(c Cluster) *owners {
	return &owners{what: "task", held: "is run by", lookup: c.TaskMember, forget: c.ForgetTaskMember}
}

// newForwarder returns the reverse proxy of forwarded calls: one pool of
// keep-alive connections to the other members.
func (s *Server) newForwarder() *httputil.ReverseProxy {
	tr := &http.Transport{
		Proxy:                 nil, // members reach each other directly
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     false, // the pty WebSocket needs HTTP/1.1 upgrades
	}
	if s.o.ForwardTLS != nil {
		tr.TLSClientConfig = s.o.ForwardTLS.Clone()
	}
	self := s.o.Cluster.ID()
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			t := pr.In.Context().Value(forwardKey{}).(*forwardTarget)
			pr.SetURL(t.url)
			pr.SetXForwarded()
			pr.Out.Header.Set(HeaderForwardedBy, self)
			// The owner logs and audits the call under this member's id.
			if id := japi.RequestIDFrom(pr.In.Context()); id != "" {
				pr.Out.Header.Set(japi.HeaderRequestID, id)
			}
		},
		// A 503 from the owner (the agent moved on, or it is going away):
		// the next call looks the owner up again.
		ModifyResponse: func(res *http.Response) error {
			if res.StatusCode == http.StatusServiceUnavailable {
				t := res.Request.Context().Value(forwardKey{}).(*forwardTarget)
				t.owners.forget(t.id)
			}
			return nil
		},
		Transport: tr,
		// Every write is passed on at once: streamed output, SSE and
		// downloads reach the client as the owner sends them.
		FlushInterval: -1,
		ErrorLog:      nil,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			t := r.Context().Value(forwardKey{}).(*forwardTarget)
			t.owners.forget(t.id)
			if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
				return // the client went away
			}
			s.m.Forwarded("unreachable")
			if s.fwdLog.Allow() { // a member that is down fails every call for its agents
				s.log.Warn("forward: the "+t.owners.what+"'s member does not answer", t.owners.what, t.id, "member", t.member, "addr", t.url.String(), "err", err)
			}
			s.retryLater(w, r, fmt.Sprintf("%s %s %s member %s, which does not answer: retry", t.owners.what, t.id, t.owners.held, t.member))
		},
	}
}

// retryLater answers 503 with Retry-After and msg, in the envelope.
func (s *Server) retryLater(w http.ResponseWriter, r *http.Request, msg string) {
	w.Header().Set("Retry-After", forwardRetryAfter)
	if w.Header().Get(japi.HeaderRequestID) == "" {
		if id := japi.RequestIDFrom(r.Context()); id != "" {
			w.Header().Set(japi.HeaderRequestID, id)
		}
	}
	japi.Fail(w, r, &japi.Error{Code: http.StatusServiceUnavailable, Msg: msg})
}

// forward proxies r to the member holding the session of the agent named
// by path parameter param and returns true, or returns false when this
// member serves r itself: it holds the agent, nobody does (the route's own
// "not connected" answer follows), or r was forwarded to it already and
// nobody else holds the agent either.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, param string) bool {
	id := r.PathValue(param)
	if id == "" || noCredentials(r) {
		return false
	}
	if _, ok := s.o.Hub.Session(id); ok {
		return false
	}
	return s.forwardTo(w, r, id, s.agentOwners)
}

// forwardTask proxies r to the member that owns the task named by path
// parameter id (it runs the task: its events, its cancel, its in-memory
// figures) and returns true, or returns false when this member serves r
// itself: it owns the task, nobody live does (an unknown or unowned task,
// a single server's, or one whose owner's lease ended and awaits a
// takeover), or r was forwarded to it already and no other member owns
// the task either.
func (s *Server) forwardTask(w http.ResponseWriter, r *http.Request) bool {
	id := r.PathValue("id")
	if id == "" || noCredentials(r) {
		return false
	}
	return s.forwardTo(w, r, id, s.taskOwners)
}

// noCredentials: a call without any is refused here with the owner's own
// 401 (the same code and tokens), without a store read or a hop.
func noCredentials(r *http.Request) bool {
	return r.Header.Get("Authorization") == "" && r.Header.Get("Sec-WebSocket-Protocol") == ""
}

// forwardTo proxies r to the live member that o names for id, unless it is
// this one or there is none (false: r is served here).
func (s *Server) forwardTo(w http.ResponseWriter, r *http.Request, id string, o *owners) bool {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	member, advertise, ok, err := o.lookup(ctx, id)
	cancel()
	if err != nil {
		s.m.Forwarded("no_owner")
		if s.fwdLog.Allow() {
			s.log.Warn("forward: read the "+o.what+"'s member", o.what, id, "err", err)
		}
		s.retryLater(w, r, fmt.Sprintf("cannot tell which member %s %s %s: the store does not answer; retry", o.what, id, o.held))
		return true
	}
	if !ok || member == s.o.Cluster.ID() {
		return false
	}
	if r.Header.Get(HeaderForwardedBy) != "" {
		// Hop limit one: the member that forwarded this call saw the agent
		// (or task) here; it has moved since.
		o.forget(id)
		s.m.Forwarded("moved")
		s.retryLater(w, r, fmt.Sprintf("%s %s moved to member %s: retry", o.what, id, member))
		return true
	}
	u, err := url.Parse(advertise)
	if err != nil || u.Host == "" {
		s.retryLater(w, r, fmt.Sprintf("%s %s %s member %s, whose address %q is unusable: retry", o.what, id, o.held, member, advertise))
		return true
	}
	// The owner's response carries its own request id (the same one).
	w.Header().Del(japi.HeaderRequestID)
	t := &forwardTarget{url: u, owners: o, id: id, member: member}
	s.m.Forwarded("relayed")
	s.fwd.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), forwardKey{}, t)))
	return true
}
