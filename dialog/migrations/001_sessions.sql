-- Conversations and every message in them.
CREATE TABLE dialog_session (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash     bytea       NOT NULL,               -- sha256 of the customer's session token
    channel        text        NOT NULL DEFAULT 'web',
    language       text        NOT NULL DEFAULT '',    -- of the customer's last message
    state          text        NOT NULL DEFAULT 'bot'
                   CHECK (state IN ('bot', 'queued', 'agent')),
    agent_id       bigint,                             -- set while state = 'agent'
    low_confidence integer     NOT NULL DEFAULT 0,     -- bot turns in a row it could not answer
    last_seq       bigint      NOT NULL DEFAULT 0,     -- seq of the newest message
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dialog_message (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id bigint      NOT NULL REFERENCES dialog_session (id) ON DELETE CASCADE,
    seq        bigint      NOT NULL,                   -- 1, 2, … within the session
    role       text        NOT NULL CHECK (role IN ('customer', 'bot', 'agent', 'system')),
    agent_id   bigint,
    client_id  text,                                   -- makes a resend idempotent
    body       text        NOT NULL,
    meta       jsonb       NOT NULL DEFAULT '{}',      -- intent, confidence, sources, versions
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (session_id, seq)
);
CREATE UNIQUE INDEX dialog_message_client ON dialog_message (session_id, role, client_id)
    WHERE client_id IS NOT NULL;
