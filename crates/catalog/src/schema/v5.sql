-- Cairn catalog, schema version 5.
--
-- Incremental backups: the chain of backups whose data a backup refers to,
-- nearest first, as a JSON list of backup ids ('[]' for a full backup and
-- for records of schema 4 and before, which are all full). Retention keeps
-- every backup a kept backup's chain names.
ALTER TABLE backups ADD COLUMN parents TEXT NOT NULL DEFAULT '[]';
