-- Search at scale. Each posting carries its entry's length (BM25 needs it, and the entries
-- need not be joined for it) and an impact: the term's BM25 term-frequency weight in the entry
-- for a reference length of 128 terms (k1 1.2, b 0.75), the order in which a query reads a
-- term's postings. A query reads each term's best postings first and at most a bounded
-- number of them, so a common term costs no more than a rare one; it scores them exactly.
ALTER TABLE retrieval_posting
    ADD COLUMN lex_len integer NOT NULL DEFAULT 0,
    ADD COLUMN impact  real    NOT NULL DEFAULT 0;
UPDATE retrieval_posting p
SET lex_len = e.lex_len, impact = p.tf / (p.tf + 1.2 * (0.25 + 0.75 * e.lex_len / 128.0))
FROM retrieval_entry e WHERE e.id = p.entry_id;
-- The impact index and an entry's terms (where a query looks up the postings of a common term
-- it did not read, for the entries it found) replace the primary key and the entry index: an
-- entry's terms are distinct when they are written (retrieval.indexLexical).
ALTER TABLE retrieval_posting DROP CONSTRAINT retrieval_posting_pkey;
DROP INDEX retrieval_posting_entry;
CREATE INDEX retrieval_posting_impact ON retrieval_posting (term, impact DESC) INCLUDE (entry_id, tf, lex_len);
CREATE INDEX retrieval_posting_entry_term ON retrieval_posting (entry_id, term) INCLUDE (tf, lex_len);
-- Postings are the entries' derived index, written only with their entry: a foreign key
-- checked on each of the millions of rows an import writes costs more than writing them. An
-- entry's postings go with it by a trigger instead, once per statement.
ALTER TABLE retrieval_posting DROP CONSTRAINT retrieval_posting_entry_id_fkey;
CREATE FUNCTION retrieval_drop_postings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM retrieval_posting WHERE entry_id IN (SELECT id FROM gone);
    RETURN NULL;
END $$;
CREATE TRIGGER retrieval_entry_postings AFTER DELETE ON retrieval_entry
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION retrieval_drop_postings();
