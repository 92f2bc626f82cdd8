package tasks

import (
	"sync"
)

// Event is one message of a task's event stream.
type Event struct {
	// ID numbers the events of a task from 1.
	ID   int64  `json:"id"`
	Type string `json:"type"` // EventState, EventOutput or EventDone
	// Agent is the agent (state and output events).
	Agent string `json:"agent,omitempty"`
	// State is the agent's state (state events) or the task's (done).
	State    string `json:"state,omitempty"`
	ExitCode *int   `json:"exit_code,omitempty"`
	Msg      string `json:"msg,omitempty"`
	// Offset is the position of Data in the agent's output; a jump from
	// the previous event's end means bytes were dropped.
	Offset *int64 `json:"offset,omitempty"`
	Data   string `json:"data,omitempty"`
}

// Event types.
const (
	EventState  = "state"
	EventOutput = "output"
	EventDone   = "done"
)

// SubscriberQueue is the events a subscriber may lag behind; a subscriber
// that falls further behind is dropped (its channel closes) and should
// reconnect and read the task's state and output afresh.
const SubscriberQueue = 4096

// Subscription receives a task's events.
type Subscription struct {
	C       <-chan Event
	c       chan Event
	b       *broker
	dropped bool
}

// Dropped reports whether the subscription ended because it lagged.
func (s *Subscription) Dropped() bool {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return s.dropped
}

// Close ends the subscription.
func (s *Subscription) Close() { s.b.unsubscribe(s) }

// broker fans a task's events out to subscribers.
type broker struct {
	mu     sync.Mutex
	seq    int64
	subs   map[*Subscription]struct{}
	joined chan struct{} // closed (and replaced) when someone subscribes
	done   bool
}

func newBroker() *broker {
	return &broker{subs: map[*Subscription]struct{}{}, joined: make(chan struct{})}
}

// active reports whether anyone listens, and a channel closed at the next
// subscription.
func (b *broker) active() (bool, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs) > 0, b.joined
}

func (b *broker) subscribe() *Subscription {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := make(chan Event, SubscriberQueue)
	s := &Subscription{C: c, c: c, b: b}
	if b.done {
		close(c)
		return s
	}
	b.subs[s] = struct{}{}
	close(b.joined)
	b.joined = make(chan struct{})
	return s
}

func (b *broker) unsubscribe(s *Subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[s]; ok {
		delete(b.subs, s)
		close(s.c)
	}
}

// publish sends e to every subscriber without blocking.
func (b *broker) publish(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	b.seq++
	e.ID = b.seq
	for s := range b.subs {
		select {
		case s.c <- e:
		default:
			s.dropped = true
			delete(b.subs, s)
			close(s.c)
		}
	}
	if e.Type == EventDone {
		b.done = true
		for s := range b.subs {
			delete(b.subs, s)
			close(s.c)
		}
	}
}
