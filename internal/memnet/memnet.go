// Package memnet is a network inside one process: a Listener whose connections are in-memory
// pipes, so that an HTTP server (and the WebSockets it upgrades) can be driven by clients in
// the same process without sockets, and without the per-process file limit.
//
// Unlike net.Pipe, each direction of a connection is buffered (up to bufferMax bytes, as a
// socket's buffer would be), so a writer does not wait for the reader to be scheduled. A
// buffer is only held while it has unread bytes: an idle connection holds none.
// Connections honour deadlines, report errors as the net package does (os.ErrDeadlineExceeded,
// net.ErrClosed, io.EOF) and carry the addresses they were dialled with, so that a server
// sees many clients as it would over TCP.
package memnet

import (
	"context"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// bufferMax is how many unread bytes a direction holds before its writer waits.
const bufferMax = 64 << 10

// chunk is the size of the buffers a direction borrows from chunks while it holds data.
const chunk = 4 << 10

var chunks = sync.Pool{New: func() any { b := make([]byte, 0, chunk); return &b }} //nolint:gochecknoglobals // a free list shared by every connection

// Listener is a net.Listener whose connections are made by Dial, in memory.
type Listener struct {
	addr  *net.TCPAddr
	conns chan *Conn
	done  chan struct{}
	once  sync.Once
	port  atomic.Uint32 // the next port a Dial without a local address gets
}

// Listen returns a Listener whose Addr is addr (a host:port, for display and for servers
// that look at it; nothing listens there).
func Listen(addr string) (*Listener, error) {
	a, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, err
	}
	l := &Listener{addr: a, conns: make(chan *Conn), done: make(chan struct{})}
	l.port.Store(1024)
	return l, nil
}

// Accept waits for the next Dial and returns the server's end of its connection.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept and makes later Dials fail; connections already made stay open.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is the address the listener was given.
func (l *Listener) Addr() net.Addr { return l.addr }

// Dial connects to the listener and returns the client's end, once the server has accepted
// it. local is the client's address as the server sees it (RemoteAddr); nil gives
// 127.0.0.1 and a port of its own.
func (l *Listener) Dial(ctx context.Context, local net.Addr) (net.Conn, error) {
	if local == nil {
		port := 1024 + (l.port.Add(1)-1024)%64512
		local = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(port)}
	}
	client, server := Pipe(local, l.addr)
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, &net.OpError{Op: "dial", Net: "mem", Addr: l.addr, Err: net.ErrClosed}
	case <-ctx.Done():
		return nil, &net.OpError{Op: "dial", Net: "mem", Addr: l.addr, Err: ctx.Err()}
	}
}

// Pipe returns the two ends of a connection between the addresses a and b: a's end first.
func Pipe(a, b net.Addr) (*Conn, *Conn) {
	ab, ba := newDirection(), newDirection()
	ca := &Conn{local: a, remote: b, in: ba, out: ab, done: make(chan struct{})}
	cb := &Conn{local: b, remote: a, in: ab, out: ba, done: make(chan struct{})}
	ca.rd.init()
	ca.wd.init()
	cb.rd.init()
	cb.wd.init()
	return ca, cb
}

// direction is the bytes one end has written and the other not yet read.
type direction struct {
	mu       sync.Mutex
	buf      *[]byte // nil while empty
	off      int     // read offset into *buf
	eof      bool    // the writer closed: the reader gets io.EOF once buf is drained
	gone     bool    // the reader closed: writes fail
	readable chan struct{}
	writable chan struct{}

	// With Deliver: where written bytes go instead of buf, one call at a time (dmu), and
	// what is called when the writer closes.
	deliver func([]byte)
	closed  func()
	dmu     sync.Mutex
}

func newDirection() *direction {
	return &direction{readable: make(chan struct{}, 1), writable: make(chan struct{}, 1)}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// read copies buffered bytes into p; n == 0 with a nil error means nothing is buffered yet.
func (d *direction) read(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.buf == nil {
		if d.eof {
			signal(d.readable) // for another reader waiting
			return 0, io.EOF
		}
		return 0, nil
	}
	n := copy(p, (*d.buf)[d.off:])
	d.off += n
	if d.off == len(*d.buf) {
		d.release()
	} else {
		signal(d.readable) // for another reader waiting
	}
	signal(d.writable)
	return n, nil
}

func (d *direction) release() {
	if cap(*d.buf) == chunk {
		*d.buf = (*d.buf)[:0]
		chunks.Put(d.buf)
	}
	d.buf, d.off = nil, 0
}

// write buffers as much of p as fits and reports how much did; with Deliver, it hands p
// over whole.
func (d *direction) write(p []byte) (int, error) {
	d.mu.Lock()
	if d.gone || d.eof {
		d.mu.Unlock()
		return 0, io.ErrClosedPipe
	}
	if fn := d.deliver; fn != nil {
		d.mu.Unlock()
		d.dmu.Lock()
		defer d.dmu.Unlock()
		fn(p)
		return len(p), nil
	}
	defer d.mu.Unlock()
	if d.buf == nil {
		if len(p) <= chunk {
			d.buf = chunks.Get().(*[]byte)
		} else {
			b := make([]byte, 0, min(len(p), bufferMax))
			d.buf = &b
		}
	} else if d.off > 0 && d.off >= len(*d.buf)/2 {
		// Move the unread bytes to the front rather than grow.
		n := copy(*d.buf, (*d.buf)[d.off:])
		*d.buf, d.off = (*d.buf)[:n], 0
	}
	n := min(len(p), bufferMax-(len(*d.buf)-d.off))
	if n <= 0 {
		return 0, nil
	}
	*d.buf = append(*d.buf, p[:n]...)
	signal(d.readable)
	if len(*d.buf)-d.off < bufferMax {
		signal(d.writable) // for another writer waiting
	}
	return n, nil
}

// Conn is one end of an in-memory connection.
type Conn struct {
	local, remote net.Addr
	in, out       *direction
	rd, wd        deadline
	done          chan struct{}
	once          sync.Once
}

// Read reads what the other end has written, waiting for it until the read deadline.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, c.check(c.rd.wait())
	}
	for {
		if err := c.check(c.rd.wait()); err != nil {
			return 0, c.opError("read", err)
		}
		n, err := c.in.read(p)
		if n > 0 || err != nil {
			return n, err
		}
		select {
		case <-c.in.readable:
		case <-c.rd.wait():
		case <-c.done:
		}
	}
}

// Write writes p whole unless the deadline passes or either end closes.
func (c *Conn) Write(p []byte) (int, error) {
	written := 0
	for {
		if err := c.check(c.wd.wait()); err != nil {
			return written, c.opError("write", err)
		}
		n, err := c.out.write(p[written:])
		written += n
		if err != nil {
			return written, c.opError("write", err)
		}
		if written == len(p) {
			return written, nil
		}
		select {
		case <-c.out.writable:
		case <-c.wd.wait():
		case <-c.done:
		}
	}
}

// check is the error of a closed connection or a passed deadline (its channel closed).
func (c *Conn) check(deadline chan struct{}) error {
	select {
	case <-c.done:
		return net.ErrClosed
	default:
	}
	select {
	case <-deadline:
		return os.ErrDeadlineExceeded
	default:
		return nil
	}
}

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "mem", Source: c.local, Addr: c.remote, Err: err}
}

// Close closes this end: the other end reads what was written before, then io.EOF, and its
// writes fail. What this end had not read is dropped.
func (c *Conn) Close() error {
	c.once.Do(func() {
		close(c.done)
		c.out.mu.Lock()
		c.out.eof = true
		closed := c.out.closed
		c.out.mu.Unlock()
		signal(c.out.readable)
		if closed != nil {
			c.out.dmu.Lock() // after the deliveries under way
			closed()
			c.out.dmu.Unlock()
		}
		c.in.mu.Lock()
		c.in.gone = true
		if c.in.buf != nil {
			c.in.release()
		}
		c.in.mu.Unlock()
		signal(c.in.writable)
		c.rd.set(time.Time{})
		c.wd.set(time.Time{})
	})
	return nil
}

// Deliver hands what the other end writes to fn, in the writer's goroutine as it writes,
// instead of keeping it for Read: a client that reacts to what it receives needs no
// goroutine of its own waiting in Read. Bytes already buffered go first. Calls are one at a
// time; fn must not keep p, and must not wait for the other end to read. closed is called
// once the other end has closed. Read must not be used afterwards.
func (c *Conn) Deliver(fn func(p []byte), closed func()) {
	d := c.in
	d.dmu.Lock()
	defer d.dmu.Unlock()
	d.mu.Lock()
	var pending []byte
	if d.buf != nil {
		pending = append(pending, (*d.buf)[d.off:]...)
		d.release()
	}
	d.deliver, d.closed = fn, closed
	eof := d.eof
	d.mu.Unlock()
	signal(d.writable)
	if len(pending) > 0 {
		fn(pending)
	}
	if eof {
		closed()
	}
}

// LocalAddr is this end's address.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr is the other end's address.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	c.wd.set(t)
	return nil
}

// SetReadDeadline sets the time after which Read fails with os.ErrDeadlineExceeded.
func (c *Conn) SetReadDeadline(t time.Time) error { c.rd.set(t); return nil }

// SetWriteDeadline sets the time after which Write fails with os.ErrDeadlineExceeded.
func (c *Conn) SetWriteDeadline(t time.Time) error { c.wd.set(t); return nil }

// deadline is a channel closed when the deadline passes, as net.Pipe's: a timer only runs
// while a deadline is set in the future.
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	passed chan struct{}
}

func (d *deadline) init() { d.passed = make(chan struct{}) }

// set arms the deadline at t; the zero time clears it.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.passed // the timer fired: wait for it to have closed the channel
	}
	d.timer = nil
	closed := isClosed(d.passed)
	if t.IsZero() {
		if closed {
			d.passed = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			d.passed = make(chan struct{})
		}
		passed := d.passed
		d.timer = time.AfterFunc(dur, func() { close(passed) })
		return
	}
	if !closed {
		close(d.passed)
	}
}

// wait is the channel closed when the deadline passes.
func (d *deadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.passed
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
