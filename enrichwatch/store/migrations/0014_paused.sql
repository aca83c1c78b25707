-- A pause waits on a person (credits to top up, a resume to send), not on the vendor, so it
-- does not count towards a job's age or its learned duration. `paused_at`: when the job was
-- found paused (NULL while it is not); `paused_seconds`: the pauses of its current run that
-- have ended. A job paused already is taken to have paused when it was last seen to.
ALTER TABLE jobs ADD COLUMN paused_at REAL;
ALTER TABLE jobs ADD COLUMN paused_seconds REAL NOT NULL DEFAULT 0;
UPDATE jobs SET paused_at = COALESCE(
    (SELECT MAX(created_at) FROM events
      WHERE events.job_id = jobs.id AND events.type = 'job.state_changed'
        AND json_extract(events.payload, '$.to') = 'needs_action'),
    updated_at)
 WHERE state = 'needs_action';
