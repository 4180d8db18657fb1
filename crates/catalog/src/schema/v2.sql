-- Cairn catalog, schema version 2: cancellation requested by another process.
-- The process running a job polls this table; a request for a job that has
-- ended is ignored.

CREATE TABLE cancel_requests (
    job_id        TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    requested_at  INTEGER NOT NULL
);

-- Which process runs a job (`<host> <pid>`) and when it last said so: start-up
-- recovery interrupts only jobs whose process is gone, so several processes
-- (a CLI in two terminals, a server) can share one catalog.
CREATE TABLE job_owners (
    job_id     TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    owner      TEXT NOT NULL,
    heartbeat  INTEGER NOT NULL
);
