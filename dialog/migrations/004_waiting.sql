-- The sweep that takes customers who went away out of the queue: waiting sessions by when
-- their customer was last seen (Engine.Present keeps it fresh while a connection is open).
CREATE INDEX dialog_session_waiting ON dialog_session (last_active_at) WHERE state = 'queued';
