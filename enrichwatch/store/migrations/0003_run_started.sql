-- When the job's latest run began: tracking, or the reprocess that last reopened it. Learned
-- durations count from here, so a reprocessed job's earlier run does not stretch its duration.
ALTER TABLE jobs ADD COLUMN run_started_at REAL;

UPDATE jobs SET run_started_at = (
    SELECT MAX(created_at) FROM events
     WHERE events.job_id = jobs.id AND events.type = 'job.reprocess_requested');
