-- The vendor's id for a job that a submit call still under way has already made. BrightLocal
-- names its batch before the call is done (jobs are added, then it is committed), so a stop
-- in between leaves the batch's id here: the batch is then deleted if it was never committed,
-- or tracked if it was, instead of being left untracked at the vendor.
ALTER TABLE jobs ADD COLUMN send_vendor_job_id TEXT;
