-- Cairn catalog, schema version 1. Times are integer nanoseconds since the Unix epoch.

CREATE TABLE backups (
    id              TEXT PRIMARY KEY,          -- bkp_<ULID>
    target          TEXT NOT NULL,
    kind            TEXT NOT NULL,             -- manual | scheduled | pre_deploy | uploaded
    status          TEXT NOT NULL,             -- in_progress | ready | failed
    label           TEXT,
    description     TEXT,
    created_at      INTEGER NOT NULL,
    duration_ms     INTEGER,
    origin          TEXT,
    signer          TEXT,
    codec           TEXT,
    components      TEXT NOT NULL DEFAULT '[]', -- JSON array of component names
    entries         INTEGER NOT NULL DEFAULT 0,
    data_bytes      INTEGER NOT NULL DEFAULT 0,
    archive_key     TEXT,
    archive_size    INTEGER,
    archive_sha256  TEXT,
    manifest_sha256 TEXT,
    manifest_offset INTEGER,
    manifest_length INTEGER,
    pinned          INTEGER NOT NULL DEFAULT 0,
    deleted_at      INTEGER,
    verified_at     INTEGER,
    verify_tier     TEXT,
    verify_ok       INTEGER,
    verify_message  TEXT
) STRICT;

CREATE INDEX backups_by_target_time ON backups (target, created_at DESC, id DESC);
CREATE INDEX backups_by_time ON backups (created_at DESC, id DESC);

CREATE TABLE jobs (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    target          TEXT NOT NULL,
    state           TEXT NOT NULL,             -- queued | running | succeeded | failed | cancelled
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    record          TEXT NOT NULL              -- the cairn_job::Job as JSON
) STRICT;

CREATE INDEX jobs_by_target_state ON jobs (target, state);
CREATE INDEX jobs_by_time ON jobs (created_at DESC, id DESC);

CREATE TABLE idempotency_keys (
    key             TEXT PRIMARY KEY,
    fingerprint     TEXT NOT NULL,
    job_id          TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    created_at      INTEGER NOT NULL
) STRICT;

CREATE TABLE schedules (
    target          TEXT PRIMARY KEY,
    state           TEXT NOT NULL,             -- cairn_retention::ScheduleState as JSON
    updated_at      INTEGER NOT NULL
) STRICT;
