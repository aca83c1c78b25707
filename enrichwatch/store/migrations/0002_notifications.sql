-- Notifications ride on the `work` outbox (kind 'notify', one row per job, outcome and channel,
-- made unique by its `unique_key`). A job may name its own targets, replacing the configured
-- ones for that job: JSON {"slack": url, "email": [address…], "webhook": url}.

ALTER TABLE jobs ADD COLUMN notify TEXT;

CREATE INDEX work_kind_job ON work (kind, job_id);
