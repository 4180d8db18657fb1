-- Cairn catalog, schema version 7.
--
-- Shared state (docs/storage.md "Shared state"): how far each target's
-- state log in the store has been applied to this catalog, and the backups
-- that log says were purged, so that a seal left behind by a purge that
-- stopped half-way is never recorded again.
CREATE TABLE shared_state (
    target TEXT PRIMARY KEY,
    generation INTEGER NOT NULL
);
CREATE TABLE purged_backups (
    id TEXT PRIMARY KEY,
    target TEXT NOT NULL
);
