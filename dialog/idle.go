package dialog

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kefu-dev/kefu"
)

// sweepBatch bounds the sessions one Sweep looks at; the next sweep takes the rest.
const sweepBatch = 500

// Sweep reminds customers who went quiet in the middle of a task, closes conversations
// idle for longer than CloseAfter, and takes customers who left while waiting for a person
// (not seen for AbandonAfter: sweepGone) out of the queue. It returns the messages it wrote,
// for delivery. Run it every few seconds; any number of instances may run it at once.
func (e *Engine) Sweep(ctx context.Context) ([]Message, error) {
	const op = "dialog.Sweep"
	now := e.cfg.Now()
	gone, err := e.sweepGone(ctx, now)
	if err != nil {
		return gone, err
	}
	closeBefore, remindBefore := now.Add(-e.cfg.CloseAfter), now.Add(-e.cfg.ReminderAfter)
	// The later of the two bounds the scan of dialog_session_idle: the OR alone left
	// PostgreSQL reading every bot session's index entry (10 ms a pass at 100,000 sessions).
	rows, err := e.pool.Query(ctx, `
SELECT id FROM dialog_session
WHERE state = 'bot' AND last_active_at < greatest($1::timestamptz, $2::timestamptz)
  AND (last_active_at < $1 OR (NOT reminded AND dialog ? 'flow' AND last_active_at < $2))
ORDER BY last_active_at LIMIT $3`, closeBefore, remindBefore, sweepBatch)
	if err != nil {
		return nil, kefu.E(op, kefu.Unavailable, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, kefu.E(op, kefu.Unavailable, err)
	}
	out := gone
	for _, id := range ids {
		var wrote *Message
		err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
			s, err := lockSession(ctx, tx, id)
			if err != nil || s.State != StateBot || s.LastActive.IsZero() { // it moved on in between
				return err
			}
			var m Message
			switch {
			case s.LastActive.Before(closeBefore):
				s.State, s.Dialog = StateClosed, State{Memory: s.Dialog.Memory}
				m, err = addMessage(ctx, tx, &s, Message{Role: RoleBot, Body: text(s.Language, "inactive_closed"),
					Meta: Meta{Event: "inactivity_closed", Language: s.Language}})
			case !s.Reminded && s.Dialog.Flow != nil && s.LastActive.Before(remindBefore):
				s.Reminded = true
				m, err = addMessage(ctx, tx, &s, Message{Role: RoleBot, Body: text(s.Language, "reminder"),
					Meta: Meta{Event: "inactivity_reminder", Language: s.Language, Flow: s.Dialog.Flow.Name,
						FlowVersion: s.Dialog.Flow.Version, Step: s.Dialog.Flow.Step}})
			default:
				return nil
			}
			if err != nil {
				return err
			}
			wrote = &m
			return saveSession(ctx, tx, s)
		})
		if err != nil {
			return out, kefu.E(op, "", err)
		}
		if wrote != nil { // only what committed is delivered
			out = append(out, *wrote)
		}
	}
	if n := len(out) - len(gone); n > 0 {
		e.log.InfoContext(ctx, "idle conversations swept", "messages", n)
	}
	return out, nil
}

// sweepGone abandons the requests of waiting customers who have not been seen for
// AbandonAfter: no message, and no open connection (the api calls Present while one is, and
// when one opens). A customer who only reloads the page or whose network drops for a moment
// keeps their place. Nothing is abandoned until the engine has run for AbandonAfter itself,
// so that after a restart of every instance the customers have that long to reconnect.
func (e *Engine) sweepGone(ctx context.Context, now time.Time) ([]Message, error) {
	const op = "dialog.Sweep"
	grace := e.cfg.AbandonAfter
	if grace <= 0 || now.Sub(e.started) < grace {
		return nil, nil
	}
	before := now.Add(-grace)
	rows, err := e.pool.Query(ctx, `
SELECT id FROM dialog_session WHERE state = 'queued' AND last_active_at < $1
ORDER BY last_active_at LIMIT $2`, before, sweepBatch)
	if err != nil {
		return nil, kefu.E(op, kefu.Unavailable, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, kefu.E(op, kefu.Unavailable, err)
	}
	var out []Message
	for _, id := range ids {
		m, err := e.abandon(ctx, id, before)
		if err != nil {
			return out, kefu.E(op, "", err)
		}
		if m != nil {
			out = append(out, *m)
		}
	}
	if len(out) > 0 {
		e.log.InfoContext(ctx, "customers gone from the queue", "abandoned", len(out))
	}
	return out, nil
}

// Resume greets a customer who comes back to a conversation with a task still open, away for
// at least ResumeAfter, and asks the task's question again. It returns nil when there is
// nothing to say.
func (e *Engine) Resume(ctx context.Context, sessionID int64) (*Message, error) {
	const op = "dialog.Resume"
	var out *Message
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		s, err := lockSession(ctx, tx, sessionID)
		if err != nil {
			return err
		}
		f := s.Dialog.Flow
		if s.State != StateBot || f == nil || s.LastActive.IsZero() || e.cfg.Now().Sub(s.LastActive) < e.cfg.ResumeAfter {
			return nil
		}
		var last string
		if err := tx.QueryRow(ctx, `SELECT coalesce(meta->>'event', '') FROM dialog_message WHERE session_id = $1 AND seq = $2`,
			s.ID, s.LastSeq).Scan(&last); err != nil && err != pgx.ErrNoRows {
			return kefu.E(op, kefu.Unavailable, err)
		}
		fl := e.flows[f.Name]
		i, ok := fl.stepIndex(f.Step)
		if last == "welcome_back" || !ok {
			return nil
		}
		res := &TurnResult{}
		t := &turn{e: e, ctx: ctx, tx: tx, s: &s, p: &plan{}, res: res, lang: s.Language, event: "welcome_back"}
		if err := t.prompt(fl, &fl.Steps[i], text(s.Language, "welcome_back")+text(s.Language, "back_to")+flowTitle(fl, s.Language)+"\n"); err != nil {
			return err
		}
		out = &res.Replies[0]
		s.LastActive, s.Reminded = e.cfg.Now(), false // the customer is back: the idle clock restarts
		return writeTurn(ctx, tx, s, res.Replies)
	})
	if err != nil {
		return nil, kefu.E(op, "", err)
	}
	return out, nil
}
