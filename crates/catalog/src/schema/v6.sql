-- Cairn catalog, schema version 6.
--
-- Encrypted backups: the fingerprints of the age recipients a backup was
-- encrypted to, from its seal, as a JSON list ('[]' for a backup stored in
-- the clear, and for records of schema 5 and before, which all are).
ALTER TABLE backups ADD COLUMN recipients TEXT NOT NULL DEFAULT '[]';
