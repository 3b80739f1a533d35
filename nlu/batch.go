package nlu

import (
	"cmp"
	"context"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/kefu-dev/kefu"
)

// maxBatch is the most messages one model run takes. Customer messages are short, so a batch
// of 32 pads little and amortises ONNX Runtime's per-run cost.
const maxBatch = 32

// Micro-batching: Understand puts its message on a queue; one worker per core takes the first
// message waiting and every other message already queued (up to maxBatch), and runs them as
// one batch. An idle classifier therefore runs a lone message at once, with no added wait,
// while a busy one answers many messages per run.
type classifyRequest struct {
	ctx  context.Context
	text string
	done chan classifyReply // buffered: a worker never blocks on a caller that gave up
}

type classifyReply struct {
	logits []float32
	sim    float32 // cosine to the nearest intent centroid, when hasSim
	hasSim bool
	err    error
}

func (c *Classifier) startBatching() {
	c.queue = make(chan classifyRequest, 4*maxBatch*runtime.NumCPU())
	c.stop = make(chan struct{})
	for range runtime.NumCPU() {
		c.workers.Go(c.batchWorker)
	}
}

// classify returns the logits of one text, computed in a micro-batch.
func (c *Classifier) classify(ctx context.Context, text string) (classifyReply, error) {
	r := classifyRequest{ctx: ctx, text: text, done: make(chan classifyReply, 1)}
	select {
	case c.queue <- r:
	case <-ctx.Done():
		return classifyReply{}, ctx.Err()
	case <-c.stop:
		return classifyReply{}, kefu.Errorf("nlu.Understand", kefu.Unavailable, "the classifier is closed")
	}
	select {
	case rep := <-r.done:
		return rep, rep.err
	case <-ctx.Done():
		return classifyReply{}, ctx.Err()
	}
}

func (c *Classifier) batchWorker() {
	batch := make([]classifyRequest, 0, maxBatch)
	texts := make([]string, 0, maxBatch)
	for {
		batch, texts = batch[:0], texts[:0]
		select {
		case r := <-c.queue:
			batch = append(batch, r)
		case <-c.stop:
			return
		}
	gather:
		for len(batch) < maxBatch {
			select {
			case r := <-c.queue:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		live := batch[:0]
		for _, r := range batch {
			if err := r.ctx.Err(); err != nil {
				r.done <- classifyReply{err: err}
				continue
			}
			live = append(live, r)
			texts = append(texts, r.text)
		}
		if len(live) == 0 {
			continue
		}
		out, err := c.run(context.Background(), texts)
		if err == nil && out.emb != nil {
			c.recent.put(texts, out.emb)
		}
		for i, r := range live {
			switch {
			case err != nil:
				r.done <- classifyReply{err: err}
			case out.sim != nil:
				r.done <- classifyReply{logits: out.logits[i], sim: out.sim[i], hasSim: true}
			default:
				r.done <- classifyReply{logits: out.logits[i]}
			}
		}
	}
}

// embedTexts embeds texts in runs of up to maxBatch, shortest first so that a run pads little,
// with as many runs at a time as there are cores. The vectors come back in the order of texts.
func (c *onnxModel) embedTexts(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	order := make([]int, len(texts))
	for i := range order {
		order[i] = i
	}
	// Bytes are a fair proxy for pieces, and cheaper than tokenizing twice.
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(len(texts[a]), len(texts[b])) })
	runs := (len(texts) + maxBatch - 1) / maxBatch
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64 // the next run to take
		done     atomic.Int64 // runs finished
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range min(runs, cap(c.slots)) {
		wg.Go(func() {
			batch := make([]string, 0, maxBatch)
			for ctx.Err() == nil {
				r := int(next.Add(1)) - 1
				if r >= runs {
					return
				}
				idx := order[r*maxBatch : min((r+1)*maxBatch, len(order))]
				batch = batch[:0]
				for _, i := range idx {
					batch = append(batch, texts[i])
				}
				res, err := c.run(ctx, batch)
				if err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				for j, i := range idx {
					out[i] = res.emb[j]
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if done.Load() < int64(runs) { // the caller gave up before every run ran
		return nil, context.Cause(ctx)
	}
	return out, nil
}

// embedCache keeps the sentence embeddings of the messages Understand saw last: a turn
// classifies a message and then searches knowledge with the same text, and the second model
// run is saved. Safe for concurrent use.
type embedCache struct {
	mu   sync.Mutex
	vecs map[string][]float32
	ring []string // keys in insertion order; the oldest goes first
	next int
}

const embedCacheSize = 2048

func (e *embedCache) put(texts []string, vecs [][]float32) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.vecs == nil {
		e.vecs, e.ring = map[string][]float32{}, make([]string, embedCacheSize)
	}
	for i, t := range texts {
		if _, ok := e.vecs[t]; ok {
			continue
		}
		if old := e.ring[e.next]; old != "" {
			delete(e.vecs, old)
		}
		e.ring[e.next], e.vecs[t] = t, vecs[i]
		e.next = (e.next + 1) % embedCacheSize
	}
}

func (e *embedCache) get(text string) ([]float32, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, ok := e.vecs[text]
	return v, ok
}
