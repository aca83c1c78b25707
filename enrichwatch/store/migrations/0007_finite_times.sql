-- Earlier versions believed a Retry-After (or x-ratelimit-reset) of "inf" or "1e999": the
-- job or work item was put off to infinity, never to be checked, sent or dead-lettered again,
-- and the API could not write the time as JSON. Such rows are due now; the times read from
-- vendors and receivers are now finite and held to a day.
UPDATE jobs SET next_check_at = CAST(strftime('%s', 'now') AS REAL)
 WHERE next_check_at > 1e308;
UPDATE jobs SET retry_after = NULL WHERE retry_after > 1e308;
UPDATE work SET next_attempt_at = CAST(strftime('%s', 'now') AS REAL)
 WHERE next_attempt_at > 1e308;
