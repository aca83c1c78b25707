-- When the job's current run of failed status checks began (NULL while its checks succeed).
-- A notice about checks that keep failing is news once per such run, and is sent when the
-- run has lasted longer than the longest a job may go unchecked. A job failing already is
-- taken to have begun at its last check.
ALTER TABLE jobs ADD COLUMN failing_since REAL;
UPDATE jobs SET failing_since = COALESCE(last_checked_at, created_at) WHERE check_failures > 0;
