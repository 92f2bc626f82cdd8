package service

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"

	ks "github.com/kardianos/service"
)

func run(c Config, start func(context.Context) error) error {
	if ks.Interactive() {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		return supervise(ctx, nil, c.StopTimeout, start)
	}
	p := &program{c: c, start: start, stop: make(chan struct{}), done: make(chan struct{})}
	s, err := newService(c, p)
	if err != nil {
		return err
	}
	p.svc = s
	if err := s.Run(); err != nil {
		return fmt.Errorf("service %s: %w", c.Name, err)
	}
	<-p.done
	return p.err
}

// program adapts start to the SCM's Start/Stop calls.
type program struct {
	c     Config
	start func(context.Context) error
	svc   ks.Service

	once sync.Once
	stop chan struct{}
	done chan struct{}
	err  error
}

func (p *program) Start(ks.Service) error {
	go func() {
		defer close(p.done)
		p.err = supervise(context.Background(), p.stop, p.c.StopTimeout, p.start)
		select {
		case <-p.stop:
		default:
			// start returned by itself: ask the SCM to stop us so Run
			// returns and the recovery actions apply.
			_ = p.svc.Stop()
		}
	}()
	return nil
}

func (p *program) Stop(ks.Service) error {
	p.once.Do(func() { close(p.stop) })
	<-p.done
	return nil
}
