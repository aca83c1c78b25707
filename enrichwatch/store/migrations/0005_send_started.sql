-- When a part's submit call went out and its outcome is not yet recorded. Left set, the
-- process stopped mid-call: the vendor may have the job, so it is never sent blindly again.
ALTER TABLE jobs ADD COLUMN send_started_at REAL;
