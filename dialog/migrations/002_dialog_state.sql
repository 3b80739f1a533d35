-- The dialog state of a session (the flow in progress, its slots, remembered entities, a
-- pending clarification), saved with every turn; when the customer last wrote, for the
-- inactivity reminder and close; and a closed state for conversations ended by inactivity.
ALTER TABLE dialog_session
    ADD COLUMN dialog         jsonb       NOT NULL DEFAULT '{}',
    ADD COLUMN last_active_at timestamptz,
    ADD COLUMN reminded       boolean     NOT NULL DEFAULT false,
    DROP CONSTRAINT dialog_session_state_check,
    ADD CONSTRAINT dialog_session_state_check CHECK (state IN ('bot', 'queued', 'agent', 'closed'));

-- The sweeper's scan: bot sessions by last activity.
CREATE INDEX dialog_session_idle ON dialog_session (last_active_at) WHERE state = 'bot';
