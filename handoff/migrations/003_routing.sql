-- Skill groups, capacity, presence, the life of a request (offer, accept, transfer, close,
-- abandon), and what the desk keeps besides: notes, canned replies, offline tickets, CSAT.

CREATE TABLE handoff_group (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name             text    NOT NULL UNIQUE,
    tier             integer NOT NULL DEFAULT 1 CHECK (tier BETWEEN 1 AND 3),  -- L1, L2, L3
    languages        text[]  NOT NULL DEFAULT '{}',        -- empty: any language
    profile_match    jsonb   NOT NULL DEFAULT '{}',        -- {"tier":"vip","region":"cn"}: verified profiles only
    strategy         text    NOT NULL DEFAULT 'least_busy'
                     CHECK (strategy IN ('least_busy', 'round_robin', 'longest_idle')),
    sla_seconds      integer NOT NULL DEFAULT 60 CHECK (sla_seconds > 0),      -- target wait
    overflow_group   bigint REFERENCES handoff_group (id) ON DELETE SET NULL,  -- where a breach goes
    accept_seconds   integer NOT NULL DEFAULT 30 CHECK (accept_seconds > 0),   -- offer lapses after
    rr_last_agent    bigint  NOT NULL DEFAULT 0,           -- round robin's cursor
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE handoff_member (
    group_id bigint NOT NULL REFERENCES handoff_group (id) ON DELETE CASCADE,
    agent_id bigint NOT NULL REFERENCES handoff_agent (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, agent_id)
);
CREATE INDEX handoff_member_agent ON handoff_member (agent_id);

-- active_chats is kept by the transactions that assign and release, under the agent's row
-- lock; the CHECK is the last line of defence for capacity.
ALTER TABLE handoff_agent
    ADD COLUMN active_chats integer NOT NULL DEFAULT 0 CHECK (active_chats >= 0),
    ADD COLUMN channel_max  jsonb   NOT NULL DEFAULT '{}',  -- {"web":3,"email":10}: per-channel caps
    ADD COLUMN auto_away    boolean NOT NULL DEFAULT false; -- away because heartbeats stopped

ALTER TABLE handoff_request
    DROP CONSTRAINT handoff_request_state_check,
    ADD CONSTRAINT handoff_request_state_check CHECK (state IN ('queued', 'assigned', 'closed', 'abandoned')),
    ADD COLUMN channel           text        NOT NULL DEFAULT 'web',
    ADD COLUMN group_id          bigint REFERENCES handoff_group (id) ON DELETE SET NULL,
    ADD COLUMN profile           jsonb       NOT NULL DEFAULT '{}',
    ADD COLUMN queued_at         timestamptz,          -- last time it entered the queue (FIFO)
    ADD COLUMN group_since       timestamptz,          -- entered its current group (SLA)
    ADD COLUMN accepted_at       timestamptz,
    ADD COLUMN first_response_at timestamptz,
    ADD COLUMN first_assigned_at timestamptz,
    ADD COLUMN declined          bigint[]    NOT NULL DEFAULT '{}', -- agents whose offer lapsed
    ADD COLUMN reassignments     integer     NOT NULL DEFAULT 0,
    ADD COLUMN transfers         integer     NOT NULL DEFAULT 0,
    ADD COLUMN overflowed        boolean     NOT NULL DEFAULT false,
    ADD COLUMN handoff_note      text        NOT NULL DEFAULT '',   -- the transfer note
    ADD COLUMN csat              smallint CHECK (csat BETWEEN 1 AND 5),
    ADD COLUMN csat_comment      text        NOT NULL DEFAULT '',
    ADD COLUMN csat_at           timestamptz;
UPDATE handoff_request SET queued_at = enqueued_at, group_since = enqueued_at;
ALTER TABLE handoff_request ALTER COLUMN queued_at SET NOT NULL, ALTER COLUMN group_since SET NOT NULL;

DROP INDEX handoff_request_queued;
CREATE INDEX handoff_request_queued ON handoff_request (priority DESC, queued_at, id) WHERE state = 'queued';
CREATE INDEX handoff_request_lapse ON handoff_request (assigned_at) WHERE state = 'assigned' AND accepted_at IS NULL;
CREATE INDEX handoff_request_session ON handoff_request (session_id, id);
CREATE INDEX handoff_request_enqueued ON handoff_request (enqueued_at);

-- Internal notes on a conversation: agents and supervisors only, never the customer.
CREATE TABLE handoff_note (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id bigint      NOT NULL,
    agent_id   bigint      NOT NULL REFERENCES handoff_agent (id),
    body       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX handoff_note_session ON handoff_note (session_id, id);

-- Canned replies, typed as /shortcut in the console.
CREATE TABLE handoff_canned (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shortcut   text NOT NULL CHECK (shortcut ~ '^[a-z0-9_-]{1,32}$'),
    language   text NOT NULL DEFAULT '',
    title      text NOT NULL,
    body       text NOT NULL,
    UNIQUE (shortcut, language)
);

-- Messages left when nobody was online.
CREATE TABLE handoff_ticket (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id bigint      NOT NULL,
    name       text        NOT NULL DEFAULT '',
    email      text        NOT NULL DEFAULT '',
    body       text        NOT NULL,
    language   text        NOT NULL DEFAULT '',
    state      text        NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
    created_at timestamptz NOT NULL DEFAULT now()
);
