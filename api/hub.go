package api

import "sync"

// Broker delivers frames to the connections subscribed to a topic ("session:7", "agent:3").
// This process's Hub implements it; a multi-instance deployment puts a broker over PostgreSQL
// LISTEN/NOTIFY or NATS behind the same interface.
type Broker interface {
	Publish(topic string, frame []byte)
	Subscribe(topic string, s Subscriber) (unsubscribe func())
}

// Subscriber receives frames; Enqueue must never block.
type Subscriber interface {
	Enqueue(frame []byte) bool
}

// Hub is the in-process Broker.
type Hub struct {
	mu     sync.RWMutex
	topics map[string]map[Subscriber]struct{}
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{topics: map[string]map[Subscriber]struct{}{}} }

// Publish hands frame to every subscriber of topic. A subscriber whose queue is full closes
// itself; the publisher never waits.
func (h *Hub) Publish(topic string, frame []byte) {
	h.mu.RLock()
	subs := make([]Subscriber, 0, len(h.topics[topic]))
	for s := range h.topics[topic] {
		subs = append(subs, s)
	}
	h.mu.RUnlock()
	for _, s := range subs {
		s.Enqueue(frame)
	}
}

// Subscribe adds s to topic until the returned function is called.
func (h *Hub) Subscribe(topic string, s Subscriber) func() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.topics[topic] == nil {
		h.topics[topic] = map[Subscriber]struct{}{}
	}
	h.topics[topic][s] = struct{}{}
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.topics[topic], s)
		if len(h.topics[topic]) == 0 {
			delete(h.topics, topic)
		}
	}
}

// Count is the number of subscribers of topic.
func (h *Hub) Count(topic string) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.topics[topic])
}
