-- Knowledge entries: one row per entry and language; translations share a key.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE retrieval_entry (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key         text        NOT NULL CHECK (key <> ''),
    language    text        NOT NULL CHECK (language <> ''),
    title       text        NOT NULL,
    question    text        NOT NULL,
    alternates  text[]      NOT NULL DEFAULT '{}',
    answer      text        NOT NULL CHECK (answer <> ''),
    link        text        NOT NULL DEFAULT '',
    version     integer     NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (key, language)
);

-- One vector per phrasing (question, title, each alternate), tagged with the embedder that
-- made it, so vectors of different models never mix.
CREATE TABLE retrieval_vector (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entry_id  bigint NOT NULL REFERENCES retrieval_entry (id) ON DELETE CASCADE,
    embedder  text   NOT NULL,
    phrasing  text   NOT NULL,
    embedding vector NOT NULL
);
CREATE INDEX retrieval_vector_entry ON retrieval_vector (entry_id);
CREATE INDEX retrieval_vector_embedder ON retrieval_vector (embedder);
