-- The submit lane looks for parts cut off mid-send on every pass; nearly every job has no
-- mark, so the index holds only the few that do.
CREATE INDEX jobs_sending ON jobs (send_started_at) WHERE send_started_at IS NOT NULL;
