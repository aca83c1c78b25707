-- Every work interval a reconciler looks for leases whose holders are gone; nearly every job
-- holds no lease, so this index holds only the few that do. (Pending work items are found
-- through work_due already.)
CREATE INDEX jobs_leased ON jobs (lease_owner) WHERE lease_owner IS NOT NULL;
