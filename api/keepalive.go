package api

import (
	"sync"
	"time"
)

// keepalive pings a server's connections and closes those whose client has gone silent, from
// one goroutine and one ticker for all of them. A ping timer and a read deadline per
// connection put two timers per connection in the runtime's timer heaps, and the runtime
// scans a heap whole each time a timer that was moved earlier comes due — pgx moves one
// around every write to PostgreSQL — which with 100,000 connections in one process took 15%
// of its CPU (runtime.(*timers).adjust).
//
// The connections are spread over keepaliveSlots slots, and each tick visits the next slot:
// a connection is pinged every `every`, and closed at the first visit after `wait` without a
// frame or a pong from its client, so a dead peer is found between wait and wait+every after
// it last spoke. Silence is measured on the monotonic clock (since base): a step of the wall
// clock neither closes every connection at once nor keeps dead ones.
type keepalive struct {
	every time.Duration // between pings of a connection
	wait  time.Duration // silence after which a connection is closed
	base  time.Time     // conn.seen counts from it

	mu      sync.Mutex
	slots   [][]*conn // each connection is in one; conn.kaSlot and kaIdx say where
	next    int       // the slot the next tick visits
	count   int
	added   int  // connections ever added: spreads a burst of them over half the slots
	running bool // the loop runs; it stops when no connection is left
}

const keepaliveSlots = 64

func newKeepalive(every, wait time.Duration) *keepalive {
	return &keepalive{every: every, wait: wait, base: time.Now(), slots: make([][]*conn, keepaliveSlots)}
}

// now is the time since base, as conn.seen holds it.
func (k *keepalive) now() int64 { return int64(time.Since(k.base)) }

// add has c pinged every `every`, first in every/2 to every; c.mu is held.
func (k *keepalive) add(c *conn) {
	c.heard()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.added++
	slot := (k.next + keepaliveSlots/2 + k.added%(keepaliveSlots/2)) % keepaliveSlots
	c.kaSlot, c.kaIdx = slot, len(k.slots[slot])
	k.slots[slot] = append(k.slots[slot], c)
	k.count++
	if !k.running {
		k.running = true
		go k.loop()
	}
}

// remove forgets c (added or not); c.mu is held.
func (k *keepalive) remove(c *conn) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if c.kaSlot < 0 {
		return
	}
	s := k.slots[c.kaSlot]
	last := s[len(s)-1]
	s[c.kaIdx], last.kaIdx = last, c.kaIdx
	s[len(s)-1] = nil
	k.slots[c.kaSlot] = s[:len(s)-1]
	c.kaSlot = -1
	k.count--
}

// loop visits a slot a tick: it closes the connections silent for longer than wait and pings
// the others, each ping on a goroutine of its own (a client that does not read holds its
// write for up to writeWait).
func (k *keepalive) loop() {
	t := time.NewTicker(max(k.every/keepaliveSlots, 1))
	defer t.Stop()
	var due []*conn
	for range t.C {
		k.mu.Lock()
		if k.count == 0 {
			k.running = false
			k.mu.Unlock()
			return
		}
		due = append(due[:0], k.slots[k.next]...)
		k.next = (k.next + 1) % keepaliveSlots
		k.mu.Unlock()
		now := k.now()
		for _, c := range due {
			if now-c.seen.Load() > int64(k.wait) {
				c.shut(closeGone) // the writer says goodbye and closes the socket, which ends the read loop
				continue
			}
			go c.pingNow()
		}
		clear(due)
	}
}
