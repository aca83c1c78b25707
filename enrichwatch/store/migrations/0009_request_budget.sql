-- Each vendor account's recent requests and its pauses (a 429, a spent count), kept here so
-- that every process on this file draws on one budget: the reconciler, a separate receiver
-- and a CLI action all call the same account, and the vendor counts them together. An account
-- is named by a digest of its vendor, base URL and key, never by the key.
CREATE TABLE request_sends (
    account TEXT NOT NULL,
    sent_at REAL NOT NULL
) STRICT;
CREATE INDEX request_sends_account ON request_sends (account, sent_at);

CREATE TABLE request_pauses (
    account TEXT PRIMARY KEY,
    until REAL NOT NULL
) STRICT, WITHOUT ROWID;
