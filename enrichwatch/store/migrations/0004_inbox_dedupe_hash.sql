-- Redeliveries are found by a 64-bit integer of the dedupe key rather than by the key's text.
-- The text (~70 bytes) made the index large and every callback wrote a random page of it; the
-- integer keeps each job's entries within a page or so. The lookup still compares the text.
-- `sha256_int64` is provided by the migrator (store.connection), not stored in the file.
ALTER TABLE inbox ADD COLUMN dedupe_hash INTEGER;

UPDATE inbox SET dedupe_hash = sha256_int64(dedupe_key);

DROP INDEX inbox_job_key;

CREATE INDEX inbox_job_hash ON inbox (job_id, dedupe_hash);
