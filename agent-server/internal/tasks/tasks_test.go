package tasks

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agentfleet/agent-server/internal/casetest"
	"github.com/agentfleet/agent-server/internal/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHeadTail(t *testing.T) {
	for _, c := range []struct {
		head, tail string
		total      int64
		out        string
		gap        int64
	}{
		{"", "", 0, "", 0},
		{"abc", "abc", 3, "abc", 0},        // all in the head
		{"abcd", "cdef", 6, "abcdef", 0},   // tail overlaps the head
		{"abcd", "efgh", 8, "abcdefgh", 0}, // adjacent
		{"abcd", "wxyz", 20, "abcd\n[... 12 bytes ...]\nwxyz", 12},
		{"abcd", "", 10, "abcd\n[... 6 bytes ...]\n", 6}, // no tail kept
	} {
		r := store.Result{OutputHead: []byte(c.head), OutputTail: []byte(c.tail), OutputBytes: c.total}
		_, _, gap := headTail(r)
		if got := Output(r); got != c.out || gap != c.gap {
			t.Errorf("%+v: %q gap %d, want %q gap %d", c, got, gap, c.out, c.gap)
		}
	}
}

var secondsCases = []struct {
	in   string
	want time.Duration
	err  string
}{
	{`5`, 5 * time.Second, ""},
	{`0.5`, 500 * time.Millisecond, ""},
	{`"1m30s"`, 90 * time.Second, ""},
	{`"2.5"`, 2500 * time.Millisecond, ""},
	{`"soon"`, 0, `json: cannot unmarshal string "soon" into Go value of type tasks.Seconds`},
	{`true`, 0, "json: cannot unmarshal bool into Go value of type tasks.Seconds"},
	{`[]`, 0, "json: cannot unmarshal array into Go value of type tasks.Seconds"},
}

func TestSeconds(t *testing.T) {
	for _, c := range secondsCases {
		var d Seconds
		err := json.Unmarshal([]byte(c.in), &d)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%s: error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || time.Duration(d) != c.want {
			t.Errorf("%s = %v, %v; want %v", c.in, time.Duration(d), err, c.want)
		}
	}
}

func FuzzSeconds(f *testing.F) {
	for _, c := range secondsCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var d Seconds
		if json.Unmarshal([]byte(s), &d) != nil {
			return
		}
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		var back Seconds
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%q → %s: %v", s, b, err)
		}
	})
}

func TestRequestCommand(t *testing.T) {
	for _, c := range []struct {
		req  string
		err  string
		cmd  string
		args []string
	}{
		{`{"cmd":"uptime"}`, "", "uptime", nil},
		{`{"script":"echo $1","args":["a"]}`, "", "sh", []string{"-c", "echo $1", "fleet-script", "a"}},
		{`{"script":"print(1)","type":"python3"}`, "", "python3", []string{"-c", "print(1)"}},
		{`{}`, "invalid request: missing cmd or script", "", nil},
		{`{"cmd":"a","script":"b"}`, "invalid request: cmd and script: give one", "", nil},
		{`{"cmd":"a","type":"sh"}`, "invalid request: type: only with script", "", nil},
		{`{"script":"x","type":"bat"}`, `invalid request: type: "bat" is not one of sh, bash, python, python3, php, lua, powershell`, "", nil},
		{`{"cmd":"a","auth":"sudo"}`, "invalid request: user: needed with auth", "", nil},
		{`{"cmd":"a","auth":"root","user":"x"}`, `invalid request: auth: "root" is not su or sudo`, "", nil},
		{`{"cmd":"a","env":["NOEQ"]}`, `invalid request: env: "NOEQ" is not K=V`, "", nil},
		{`{"cmd":"a","timeout":-1}`, "invalid request: timeout: must be between 0 and 168h0m0s", "", nil},
		{`{"cmd":"a","canary":-2}`, "invalid request: canary -2 is negative", "", nil},
		{`{"cmd":"a","batch_wait":-1}`, "invalid request: batch_wait -1s is negative", "", nil},
		{`{"script":"` + strings.Repeat("x", MaxScript+1) + `"}`, "invalid request: script: over 65536 bytes", "", nil},
	} {
		var r Request
		if err := json.Unmarshal([]byte(c.req), &r); err != nil {
			t.Fatalf("%s: %v", c.req, err)
		}
		cmd, err := r.command()
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%.60s: error %v, want %q", c.req, err, c.err)
			}
			continue
		}
		if err != nil || cmd.Cmd != c.cmd || strings.Join(cmd.Args, "|") != strings.Join(c.args, "|") || cmd.Timeout != DefaultTimeout {
			t.Errorf("%s: %+v %v", c.req, cmd, err)
		}
	}
}

var resultPathCases = []casetest.Case[string, string]{
	{In: "a.log", Want: "a.log"},
	{In: "logs/./x/../a.log", Want: "logs/a.log"},
	{In: `logs\a.log`, Want: "logs/a.log"},
	{In: "", Err: "empty path"},
	{In: ".", Err: "empty path"},
	{In: "/etc/passwd", Err: `"/etc/passwd" must be relative to the task's result area`},
	{In: "C:/x", Err: `"C:/x" must be relative to the task's result area`},
	{In: "../x", Err: `"../x" escapes the task's result area`},
	{In: "a/../../x", Err: `"a/../../x" escapes the task's result area`},
}

func TestResultPath(t *testing.T) {
	casetest.Run(t, "ResultPath", ResultPath, resultPathCases)
}

func FuzzResultPath(f *testing.F) {
	casetest.Seed(f, resultPathCases)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ResultPath(s)
		if err != nil {
			return
		}
		if p == "" || p == "." || strings.HasPrefix(p, "/") || p == ".." || strings.HasPrefix(p, "../") || strings.Contains(p, "\\") {
			t.Fatalf("%q → %q accepted", s, p)
		}
	})
}

func TestBroker(t *testing.T) {
	b := newBroker()
	if on, _ := b.active(); on {
		t.Fatal("active without subscribers")
	}
	_, joined := b.active()
	fast, slow := b.subscribe(), b.subscribe()
	select {
	case <-joined:
	default:
		t.Fatal("joined not closed by a subscription")
	}
	// The fast reader keeps up by construction: each event is published
	// only after it took the previous one, however busy the machine is.
	took := make(chan struct{})
	go func() {
		for range fast.C {
			took <- struct{}{}
		}
	}()
	for i := range SubscriberQueue + 10 {
		b.publish(Event{Type: EventOutput, Data: string(rune('a' + i%26))})
		<-took
	}
	n := 0
	for range slow.C {
		n++
	}
	if n != SubscriberQueue || !slow.Dropped() || fast.Dropped() {
		t.Fatalf("slow got %d events, dropped %v; fast dropped %v", n, slow.Dropped(), fast.Dropped())
	}
	b.publish(Event{Type: EventDone, State: "done"})
	<-took // the fast reader got done, too
	if late := b.subscribe(); late != nil {
		if _, ok := <-late.C; ok {
			t.Fatal("a subscription after done got an event")
		}
	}
	fast.Close() // after done: no double close
}
