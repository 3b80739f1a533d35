-- Agents, their login tokens, and the routing queue of conversations waiting for a person.
CREATE TABLE handoff_agent (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email            text        NOT NULL UNIQUE,
    name             text        NOT NULL,
    password_hash    text        NOT NULL,             -- argon2id, PHC string
    languages        text[]      NOT NULL DEFAULT '{}', -- empty: any language
    max_chats        integer     NOT NULL DEFAULT 5 CHECK (max_chats > 0),
    status           text        NOT NULL DEFAULT 'offline'
                     CHECK (status IN ('online', 'away', 'offline')),
    last_seen        timestamptz,
    last_assigned_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE handoff_token (
    token_hash bytea PRIMARY KEY,                      -- sha256 of the bearer token
    agent_id   bigint      NOT NULL REFERENCES handoff_agent (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL
);

-- One row per escalation. A session has at most one open (queued or assigned) request.
CREATE TABLE handoff_request (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id  bigint      NOT NULL,
    language    text        NOT NULL DEFAULT '',
    reason      text        NOT NULL,
    priority    integer     NOT NULL DEFAULT 0,        -- higher first; FIFO within a priority
    state       text        NOT NULL DEFAULT 'queued'
                CHECK (state IN ('queued', 'assigned', 'closed')),
    agent_id    bigint REFERENCES handoff_agent (id),
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    assigned_at timestamptz,
    closed_at   timestamptz,
    disposition text        NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX handoff_request_open ON handoff_request (session_id) WHERE state IN ('queued', 'assigned');
CREATE INDEX handoff_request_queued ON handoff_request (priority DESC, enqueued_at) WHERE state = 'queued';
CREATE INDEX handoff_request_agent ON handoff_request (agent_id) WHERE state = 'assigned';
