-- Versioned editing. Every change to an entry is a revision; retrieval_entry (with its vectors
-- and postings) holds only what is published, which is what customers are answered from.
-- A document is one revision; its published chunks are entries with kind 'passage' whose
-- parent is the document's key.
ALTER TABLE retrieval_entry
    ADD COLUMN kind   text   NOT NULL DEFAULT 'faq' CHECK (kind IN ('faq', 'passage')),
    ADD COLUMN parent text   NOT NULL DEFAULT '',
    ADD COLUMN tags   text[] NOT NULL DEFAULT '{}';
CREATE INDEX retrieval_entry_parent ON retrieval_entry (parent, language) WHERE parent <> '';

CREATE TABLE retrieval_revision (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key          text        NOT NULL CHECK (key <> ''),
    language     text        NOT NULL CHECK (language <> ''),
    version      integer     NOT NULL CHECK (version > 0),
    -- draft: being edited (at most one per key and language); published: was live once
    -- (the live one is retrieval_entry.version, or none after an archive); discarded.
    state        text        NOT NULL CHECK (state IN ('draft', 'published', 'discarded')),
    kind         text        NOT NULL DEFAULT 'faq' CHECK (kind IN ('faq', 'document')),
    format       text        NOT NULL DEFAULT '',   -- a document's: markdown, html, text
    title        text        NOT NULL DEFAULT '',
    question     text        NOT NULL DEFAULT '',
    alternates   text[]      NOT NULL DEFAULT '{}',
    answer       text        NOT NULL DEFAULT '',   -- a document's body
    link         text        NOT NULL DEFAULT '',
    tags         text[]      NOT NULL DEFAULT '{}',
    note         text        NOT NULL DEFAULT '',   -- the editor's change note
    author       text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    published_by text        NOT NULL DEFAULT '',
    UNIQUE (key, language, version)
);
CREATE UNIQUE INDEX retrieval_revision_draft ON retrieval_revision (key, language) WHERE state = 'draft';

-- Who did what to the knowledge base, and when.
CREATE TABLE retrieval_audit (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    actor    text        NOT NULL,
    action   text        NOT NULL,
    key      text        NOT NULL DEFAULT '',
    language text        NOT NULL DEFAULT '',
    version  integer,
    detail   jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX retrieval_audit_key ON retrieval_audit (key, language, at DESC);

-- Every question that went to the knowledge base in a conversation, and what it got: hit
-- counts, gaps and related questions are read from here.
CREATE TABLE retrieval_usage (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    session_id bigint      NOT NULL,
    question   text        NOT NULL,
    language   text        NOT NULL DEFAULT '',
    key        text        NOT NULL DEFAULT '',     -- the entry that answered; '' when none did
    score      real        NOT NULL DEFAULT 0,
    gap_closed boolean     NOT NULL DEFAULT false   -- an editor turned it into a draft or dismissed it
);
CREATE INDEX retrieval_usage_key ON retrieval_usage (key, at) WHERE key <> '';
CREATE INDEX retrieval_usage_gap ON retrieval_usage (at) WHERE key = '' AND NOT gap_closed;
CREATE INDEX retrieval_usage_session ON retrieval_usage (session_id);

-- Customers' thumbs up (1) or down (-1) on an answer, one per bot message.
CREATE TABLE retrieval_feedback (
    session_id bigint      NOT NULL,
    seq        bigint      NOT NULL,
    key        text        NOT NULL,
    language   text        NOT NULL,
    version    integer     NOT NULL,
    vote       smallint    NOT NULL CHECK (vote IN (-1, 1)),
    comment    text        NOT NULL DEFAULT '',
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, seq)
);
CREATE INDEX retrieval_feedback_key ON retrieval_feedback (key, language);

-- Entries published before versioning existed get their first revision.
INSERT INTO retrieval_revision (key, language, version, state, title, question, alternates, answer, link,
                                author, created_at, updated_at, published_at, published_by)
SELECT key, language, version, 'published', title, question, alternates, answer, link,
       'migration', updated_at, updated_at, updated_at, 'migration'
FROM retrieval_entry;
