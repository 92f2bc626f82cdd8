package service

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"

	ks "github.com/kardianos/service"
)

// run: in a console, Ctrl-C stops start. Under the SCM, a stop request
// cancels start and Run returns once the SCM has the service stopped; when
// start returns by itself, Run returns at once without telling the SCM, and
// the caller's process exits: the SCM sees a service process end while
// running, which it counts as a failure and answers with the recovery
// actions (restart after 5 s). Asking the SCM to stop the service instead
// would record a clean stop, which is never restarted.
func run(c Config, start func(context.Context) error) error {
	if ks.Interactive() {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		return supervise(ctx, nil, c.StopTimeout, start)
	}
	p := &program{c: c, start: start, stop: make(chan struct{}), done: make(chan struct{}), exited: make(chan struct{})}
	s, err := newService(c, p)
	if err != nil {
		return err
	}
	// The dispatcher keeps running when start returns by itself; the
	// process exit ends it.
	ran := make(chan error, 1)
	go func() { ran <- s.Run() }()
	select {
	case err = <-ran:
		select {
		case <-p.done: // stopped through the SCM: Stop waited for start
			if err == nil {
				err = p.err
			}
		default: // the dispatcher failed before Start: err says why
		}
	case <-p.exited:
		err = p.err
	}
	if err != nil {
		return fmt.Errorf("service %s: %w", c.Name, err)
	}
	return nil
}

// program adapts start to the SCM's Start/Stop calls.
type program struct {
	c     Config
	start func(context.Context) error

	once   sync.Once
	stop   chan struct{} // closed by Stop
	done   chan struct{} // closed when start has returned; err is set
	exited chan struct{} // closed (after done) when start returned without a stop request
	err    error
}

func (p *program) Start(ks.Service) error {
	go func() {
		p.err = supervise(context.Background(), p.stop, p.c.StopTimeout, p.start)
		close(p.done)
		select {
		case <-p.stop:
		default:
			close(p.exited)
		}
	}()
	return nil
}

func (p *program) Stop(ks.Service) error {
	p.once.Do(func() { close(p.stop) })
	<-p.done
	return nil
}
