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

// Micro-batching: a single text (Understand's message, or the knowledge search's question)
// goes on the model's queue; one worker per core takes the first text waiting and every other
// text already queued (up to maxBatch), and runs them as one batch. An idle model therefore
// runs a lone text at once, with no added wait, while a busy one answers many texts per run.
// Bulk embedding (embedTexts) runs its own batches and does not queue.
type oneRequest struct {
	ctx  context.Context
	text string
	done chan oneReply // buffered: a worker never blocks on a caller that gave up
}

// oneReply is one text's row of a run's outputs.
type oneReply struct {
	logits []float32 // nil without a classification head
	emb    []float32 // nil without an embedding output
	sim    float32   // cosine to the nearest intent centroid, when hasSim
	hasSim bool
	err    error
}

func (c *onnxModel) startBatching() {
	c.queue = make(chan oneRequest, 4*maxBatch*runtime.NumCPU())
	c.stop = make(chan struct{})
	for range runtime.NumCPU() {
		c.workers.Go(c.batchWorker)
	}
}

// one runs the model on one text, in a micro-batch.
func (c *onnxModel) one(ctx context.Context, op, text string) (oneReply, error) {
	closed := kefu.Errorf(op, kefu.Unavailable, "the model is closed")
	select {
	case <-c.stop: // the queue may have room, but nobody takes from it any more
		return oneReply{}, closed
	default:
	}
	r := oneRequest{ctx: ctx, text: text, done: make(chan oneReply, 1)}
	select {
	case c.queue <- r:
	case <-ctx.Done():
		return oneReply{}, ctx.Err()
	case <-c.stop:
		return oneReply{}, closed
	}
	select {
	case rep := <-r.done:
		return rep, rep.err
	case <-ctx.Done():
		return oneReply{}, ctx.Err()
	case <-c.stop:
		return oneReply{}, closed
	}
}

// close stops the micro-batching workers and releases the session.
func (c *onnxModel) close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.stop)
		c.workers.Wait()
		err = c.session.Destroy()
	})
	return err
}

func (c *onnxModel) batchWorker() {
	batch := make([]oneRequest, 0, maxBatch)
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
				r.done <- oneReply{err: err}
				continue
			}
			live = append(live, r)
			texts = append(texts, r.text)
		}
		if len(live) == 0 {
			continue
		}
		out, err := c.run(context.Background(), texts)
		if err == nil && out.emb != nil && c.ran != nil {
			c.ran(texts, out.emb)
		}
		for i, r := range live {
			if err != nil {
				r.done <- oneReply{err: err}
				continue
			}
			rep := oneReply{}
			if out.logits != nil {
				rep.logits = out.logits[i]
			}
			if out.emb != nil {
				rep.emb = out.emb[i]
			}
			if out.sim != nil {
				rep.sim, rep.hasSim = out.sim[i], true
			}
			r.done <- rep
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

// recentSize is how many messages' embeddings a classifier keeps: a turn classifies a message
// and then searches knowledge with the same text, and the second model run is saved.
const recentSize = 2048
