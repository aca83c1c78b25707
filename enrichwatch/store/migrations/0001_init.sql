-- The event log: `events` is the append-only history, `jobs` its projection, updated in the
-- same transaction. Times are unix seconds (REAL).

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE jobs (
    id                 INTEGER PRIMARY KEY,
    vendor             TEXT NOT NULL,
    vendor_job_id      TEXT,  -- NULL while a submission is on its way to the vendor
    name               TEXT,
    state              TEXT NOT NULL DEFAULT 'submitted'
                       CHECK (state IN ('submitted', 'queued', 'running', 'needs_action',
                                        'completed', 'failed', 'expired')),
    vendor_status      TEXT,
    error              TEXT,
    progress_done      INTEGER,
    progress_failed    INTEGER,
    progress_total     INTEGER,
    callback_token     TEXT NOT NULL,
    callback_key       TEXT NOT NULL UNIQUE,  -- sha256 of the token: the lookup key
    next_check_at      REAL,
    lease_owner        TEXT,
    lease_expires_at   REAL,
    vendor_calls       REAL NOT NULL DEFAULT 0,  -- a list call is shared by the jobs it covers
    callbacks_received INTEGER NOT NULL DEFAULT 0,
    expects_callback   INTEGER NOT NULL DEFAULT 0,  -- we gave the vendor our callback URL
    last_callback_at   REAL,
    late_webhook_at    REAL,
    check_failures     INTEGER NOT NULL DEFAULT 0,  -- consecutive failed status calls
    retry_after        REAL,
    input_rows         INTEGER,
    results_state      TEXT CHECK (results_state IN ('pending', 'fetching', 'stored', 'fetch_failed')),
    results_count      INTEGER NOT NULL DEFAULT 0,
    created_at         REAL NOT NULL,
    updated_at         REAL NOT NULL,
    last_checked_at    REAL,
    finished_at        REAL,
    UNIQUE (vendor, vendor_job_id)
) STRICT;

CREATE INDEX jobs_due ON jobs (next_check_at) WHERE next_check_at IS NOT NULL;
CREATE INDEX jobs_state ON jobs (state, vendor);

CREATE TABLE events (
    seq        INTEGER PRIMARY KEY,  -- append-only, so rowids only ever grow
    job_id     INTEGER NOT NULL REFERENCES jobs (id),
    type       TEXT NOT NULL,
    source     TEXT NOT NULL CHECK (source IN ('webhook', 'poll', 'api', 'system')),
    payload    TEXT NOT NULL DEFAULT '{}',
    dedupe_key TEXT,
    created_at REAL NOT NULL
) STRICT;

CREATE INDEX events_job ON events (job_id, seq);
CREATE UNIQUE INDEX events_dedupe ON events (job_id, dedupe_key) WHERE dedupe_key IS NOT NULL;

-- Every raw inbound request, as received, so it can be inspected and replayed.
CREATE TABLE inbox (
    id           INTEGER PRIMARY KEY,
    vendor       TEXT NOT NULL,
    job_id       INTEGER NOT NULL REFERENCES jobs (id),
    received_at  REAL NOT NULL,
    method       TEXT NOT NULL,
    headers      TEXT NOT NULL,
    content_type TEXT,
    body         BLOB NOT NULL,
    verification TEXT NOT NULL,
    dedupe_key   TEXT NOT NULL,
    duplicate_of INTEGER REFERENCES inbox (id)
) STRICT;

-- One index serves both the dedupe lookup and listing a job's deliveries; the first delivery of
-- a key is unique because every write runs under SQLite's single write lock.
CREATE INDEX inbox_job_key ON inbox (job_id, dedupe_key);

-- Pending side effects (fetch results, notify), created with the event that causes them.
CREATE TABLE work (
    id               INTEGER PRIMARY KEY,
    kind             TEXT NOT NULL,
    job_id           INTEGER REFERENCES jobs (id),
    payload          TEXT NOT NULL DEFAULT '{}',
    state            TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL NOT NULL,
    lease_owner      TEXT,
    lease_expires_at REAL,
    last_error       TEXT,
    unique_key       TEXT NOT NULL UNIQUE,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL
) STRICT;

CREATE INDEX work_due ON work (state, next_attempt_at);

CREATE TABLE results (
    job_id   INTEGER NOT NULL REFERENCES jobs (id),
    position INTEGER NOT NULL,
    input_id TEXT,
    status   TEXT,
    data     TEXT NOT NULL,
    PRIMARY KEY (job_id, position)
) STRICT, WITHOUT ROWID;
