package handoff

import (
	"math"
	"time"
)

// This file is the queueing theory a desk is planned with: Erlang C for a queue whose customers
// wait as long as it takes (M/M/N), and Erlang A for one whose customers give up (M/M/N+M).
// kefu handoff sim checks the real queue against both.

// ErlangB is the probability that an arrival finds all n servers busy in a loss system offered
// a erlangs (Erlang's loss formula). It uses the recursion B(0) = 1,
// B(k) = a·B(k−1) / (k + a·B(k−1)), which stays in [0, 1] for any n and a: no factorials.
func ErlangB(n int, a float64) float64 {
	if a <= 0 {
		if n == 0 {
			return 1
		}
		return 0
	}
	b := 1.0
	for k := 1; k <= n; k++ {
		b = a * b / (float64(k) + a*b)
	}
	return b
}

// ErlangC is the probability that an arrival has to wait in a queue of n servers offered a
// erlangs (arrival rate × mean handling time), with Poisson arrivals and exponential handling
// times: C = n·B / (n − a·(1 − B)) with B = ErlangB(n, a). It is 1 when a ≥ n: the queue grows
// without bound.
func ErlangC(n int, a float64) float64 {
	if a <= 0 {
		return 0
	}
	if n <= 0 || a >= float64(n) {
		return 1
	}
	b := ErlangB(n, a)
	return float64(n) * b / (float64(n) - a*(1-b))
}

// MMN is a queue of Servers identical servers (an agent taking one chat at a time is one; an
// agent taking three is three, when a chat takes as long however many are open), Poisson
// arrivals at Rate per second and exponential handling times of mean Handle: the queue Erlang
// C describes. Customers wait as long as it takes.
type MMN struct {
	Servers int
	Rate    float64       // arrivals per second
	Handle  time.Duration // mean handling time
}

// Load is the offered load in erlangs: Rate × Handle.
func (m MMN) Load() float64 { return m.Rate * m.Handle.Seconds() }

// Utilisation is the share of the time a server is busy: Load / Servers (at most 1).
func (m MMN) Utilisation() float64 { return min(1, m.Load()/float64(m.Servers)) }

// Stable reports whether the queue has a steady state (Load < Servers).
func (m MMN) Stable() bool { return m.Servers > 0 && m.Handle > 0 && m.Load() < float64(m.Servers) }

// PWait is the probability that a customer waits at all: Erlang C.
func (m MMN) PWait() float64 { return ErlangC(m.Servers, m.Load()) }

// drain is the rate at which the wait of a delayed customer ends: N·μ − λ, per second.
func (m MMN) drain() float64 { return (float64(m.Servers) - m.Load()) / m.Handle.Seconds() }

// MeanWait is the mean wait of all customers (zero for those served at once):
// C / (N·μ − λ). It is +Inf for a queue without a steady state.
func (m MMN) MeanWait() float64 {
	if !m.Stable() {
		return math.Inf(1)
	}
	return m.PWait() / m.drain()
}

// WaitWithin is the probability that a customer waits at most t, the service level of a
// target t: 1 − C·e^{−(N·μ−λ)·t}.
func (m MMN) WaitWithin(t time.Duration) float64 {
	if !m.Stable() {
		return 0
	}
	return 1 - m.PWait()*math.Exp(-m.drain()*t.Seconds())
}

// WaitQuantile is the wait, in seconds, that a share p of customers do not exceed: 0 when at
// least p are served at once, else ln(C / (1 − p)) / (N·μ − λ).
func (m MMN) WaitQuantile(p float64) float64 {
	if !m.Stable() || p >= 1 {
		return math.Inf(1)
	}
	c := m.PWait()
	if p <= 1-c {
		return 0
	}
	return math.Log(c/(1-p)) / m.drain()
}

// ErlangA is an MMN whose customers give up after an exponential patience of mean Patience
// (Palm's M/M/N+M). It has a steady state even when the load exceeds the servers, because
// the queue sheds customers.
type ErlangA struct {
	MMN
	Patience time.Duration
}

// ErlangAResult is the steady state of an ErlangA queue.
type ErlangAResult struct {
	PWait     float64 // a customer finds every server busy and waits
	PAbandon  float64 // a customer gives up before being served
	MeanQueue float64 // mean time in the queue of all customers, served or not, in seconds
	MeanLen   float64 // mean number waiting
}

// Solve computes the steady state from the birth–death chain of the number of customers
// present: arrivals at λ; departures at k·μ below N and N·μ + (k−N)·θ above, θ = 1/Patience.
// It works in logarithms, so hundreds of servers do not overflow, and stops when the tail
// weighs less than 1e-15. With Patience 0 (no one gives up) it is Erlang C.
func (e ErlangA) Solve() ErlangAResult {
	if e.Servers <= 0 || e.Handle <= 0 || e.Rate <= 0 {
		return ErlangAResult{PWait: b2f(e.Rate > 0)}
	}
	if e.Patience <= 0 {
		if !e.Stable() {
			return ErlangAResult{PWait: 1, MeanQueue: math.Inf(1), MeanLen: math.Inf(1)}
		}
		c := e.PWait()
		return ErlangAResult{PWait: c, MeanQueue: e.MeanWait(), MeanLen: e.MeanWait() * e.Rate}
	}
	lambda, mu, theta := e.Rate, 1/e.Handle.Seconds(), 1/e.Patience.Seconds()
	n := e.Servers
	// Terms x_k relative to x_N = 1, in logarithms, summed against a running peak (rescaling
	// the sums when it rises) so that no term overflows or is stored.
	var peak, total, waiting, queueLen float64
	add := func(l float64, waits bool, j float64) {
		if l > peak {
			f := math.Exp(peak - l)
			total, waiting, queueLen, peak = total*f, waiting*f, queueLen*f, l
		}
		x := math.Exp(l - peak)
		total += x
		if waits {
			waiting += x
			queueLen += j * x
		}
	}
	// Below N, downwards: x_k = x_{k+1}·(k+1)μ/λ.
	l := 0.0
	for k := n - 1; k >= 0; k-- {
		l += math.Log(float64(k+1) * mu / lambda)
		add(l, false, 0)
	}
	// From N up: x_{N+j+1} = x_{N+j}·λ/(Nμ + (j+1)θ); the ratio falls below 1 eventually,
	// and the chain stops once the terms fall and weigh less than e^-40 of the largest.
	l = 0
	for j := 0; j < 100_000_000; j++ {
		add(l, true, float64(j))
		next := l + math.Log(lambda/(float64(n)*mu+float64(j+1)*theta))
		if next < l && next < peak-40 {
			break
		}
		l = next
	}
	r := ErlangAResult{PWait: waiting / total, MeanLen: queueLen / total}
	r.MeanQueue = r.MeanLen / lambda // Little's law over every customer who queues
	r.PAbandon = theta * r.MeanLen / lambda
	return r
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
