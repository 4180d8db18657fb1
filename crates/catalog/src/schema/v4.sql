-- Cairn catalog, schema version 4.
--
-- A backup's record exists from the moment the backup starts: `creating`,
-- then `uploading` while its archive is sent, then `ready` or `failed` with a
-- `status_message`. (`restoring` is not stored: a ready backup reads
-- `restoring` while a restore or reset job that reads it is unfinished, which
-- the listing works out from `jobs.backup_id`.)

UPDATE backups SET status = 'creating' WHERE status = 'in_progress';

ALTER TABLE backups ADD COLUMN status_message TEXT;
-- Who made it, from its manifest's origin.
ALTER TABLE backups ADD COLUMN hostname TEXT;
ALTER TABLE backups ADD COLUMN model TEXT;
ALTER TABLE backups ADD COLUMN serial TEXT;
ALTER TABLE backups ADD COLUMN software_version TEXT;
-- {"<component>": "dir" | "file" | "sqlite"}; '{}' when not known (records of
-- schema 3 and before).
ALTER TABLE backups ADD COLUMN component_kinds TEXT NOT NULL DEFAULT '{}';
-- An uploaded Cairn archive: the key id that signed it where it was made,
-- and whether this installation trusted that key.
ALTER TABLE backups ADD COLUMN source_signer TEXT;
ALTER TABLE backups ADD COLUMN source_trusted INTEGER;

-- The backup a job makes or reads (the job's `resource`).
ALTER TABLE jobs ADD COLUMN backup_id TEXT;
CREATE INDEX jobs_by_backup ON jobs (backup_id) WHERE backup_id IS NOT NULL;

-- Facts about the installation: `signer`, the key id new backups are signed
-- with (a key file that no longer matches it is refused).
CREATE TABLE installation (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
