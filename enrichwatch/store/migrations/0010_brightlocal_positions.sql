-- BrightLocal results are now kept at their job ids rather than at their rank among the jobs
-- finished so far. A fetch an earlier version left unfinished would resume at a rank and mix
-- the two: it starts over instead (a batch's results are one body, read again whole).
DELETE FROM results WHERE job_id IN (
    SELECT id FROM jobs
     WHERE vendor = 'brightlocal' AND results_state IN ('pending', 'fetching')
);
UPDATE jobs SET results_count = 0
 WHERE vendor = 'brightlocal' AND results_state IN ('pending', 'fetching');
