package store

import (
	"context"
	"database/sql"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// SQLite checkpoints off the write path.
//
// In WAL mode a commit appends its pages to the -wal file; a checkpoint
// copies them back into the database file and fsyncs both. By default
// SQLite runs it inside the commit that takes the WAL past 1,000 pages, so
// about one exec in 40 paid the copy and two fsyncs (several milliseconds)
// before its API answer. The writer connection now checkpoints only past
// ckptBackstop pages (a bound on the WAL if the checkpointer falls
// behind), and a goroutine on its own connection runs a PASSIVE
// checkpoint once ckptWrites write calls (transactions or one-statement
// writes; an exec makes three of about six pages each) were made since the
// last one, or ckptIdle after the last one when fewer were: about as often
// as SQLite's default, so no more fsyncs than before, and a trickle of
// writes costs at most one checkpoint per ckptIdle. A PASSIVE checkpoint takes no
// write lock: commits go on while it copies and syncs. Durability does not
// change: a commit is what makes a write survive (WAL,
// synchronous=NORMAL, as before); a checkpoint only moves committed pages
// into the main file. With nothing written since its last complete
// checkpoint the goroutine sleeps until the next write (an idle server
// wakes no timer for it).
const (
	ckptInterval = 100 * time.Millisecond // how often the counts are looked at
	ckptWrites   = 128
	ckptIdle     = 10 * time.Second
	ckptBackstop = 4000 // pages (4 KiB each): the writer's wal_autocheckpoint
)

// checkpointer runs PASSIVE checkpoints on db when the store was written.
type checkpointer struct {
	db    *sql.DB
	log   *slog.Logger
	wrote atomic.Uint64 // bumped by the store's writes (tx1, execW)
	full  atomic.Int64  // complete checkpoints (tests)
	idle  atomic.Bool   // the goroutine sleeps until kick
	kick  chan struct{} // size 1: a write came while idle
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
	err   error // of close
}

func newCheckpointer(db *sql.DB, log *slog.Logger) *checkpointer {
	c := &checkpointer{db: db, log: log, kick: make(chan struct{}, 1), stop: make(chan struct{})}
	c.wg.Go(c.run)
	return c
}

// noteWrite counts a write (the WAL may have grown) and wakes the
// goroutine if it sleeps.
func (c *checkpointer) noteWrite() {
	c.wrote.Add(1)
	if c.idle.Load() {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
}

func (c *checkpointer) run() {
	t := time.NewTicker(ckptInterval)
	defer t.Stop()
	var done uint64 // c.wrote at the last complete checkpoint
	last := time.Now()
	var retry time.Time // after an error
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		w := c.wrote.Load()
		if w == done {
			// Nothing to copy: sleep until a write. idle is set before
			// wrote is read again, and noteWrite bumps wrote before it
			// reads idle, so a write is never missed.
			c.idle.Store(true)
			if c.wrote.Load() == done {
				t.Stop()
				select {
				case <-c.stop:
					return
				case <-c.kick:
				}
				t.Reset(ckptInterval)
			}
			c.idle.Store(false)
			continue
		}
		if w-done < ckptWrites && time.Since(last) < ckptIdle || time.Now().Before(retry) {
			continue
		}
		last = time.Now()
		complete, err := c.checkpoint()
		switch {
		case err != nil:
			c.log.Warn("store: sqlite checkpoint (the writer checkpoints past the backstop meanwhile)", "err", err)
			retry = last.Add(time.Second)
		case complete:
			done = w
			c.full.Add(1)
		}
	}
}

// checkpoint runs one PASSIVE checkpoint and reports whether it copied
// every frame of the WAL (false: readers still need some; the next tick
// tries again).
func (c *checkpointer) checkpoint() (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var busy, log, done int
	if err := c.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &done); err != nil {
		return false, err
	}
	return busy == 0 && done >= log, nil
}

// close stops the goroutine and closes its connection (the writer's close
// checkpoints what is left). It may be called again.
func (c *checkpointer) close() error {
	c.once.Do(func() {
		close(c.stop)
		c.wg.Wait()
		c.err = c.db.Close()
	})
	return c.err
}
