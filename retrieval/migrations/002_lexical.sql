-- The lexical index: BM25 terms of each entry (title, question, alternates, answer), made in
-- Go (Chinese segmented by gse), and each entry's length in terms.
CREATE TABLE retrieval_posting (
    term     text    NOT NULL,
    entry_id bigint  NOT NULL REFERENCES retrieval_entry (id) ON DELETE CASCADE,
    tf       integer NOT NULL,
    PRIMARY KEY (term, entry_id)
);
CREATE INDEX retrieval_posting_entry ON retrieval_posting (entry_id);
ALTER TABLE retrieval_entry ADD COLUMN lex_len integer NOT NULL DEFAULT 0;
