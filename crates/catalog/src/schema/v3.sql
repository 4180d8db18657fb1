-- Cairn catalog, schema version 3: settings of a target changed at run time
-- (through the server's PUT routes or the library), which override the
-- configuration's values until changed again. NULL = the configured value.

CREATE TABLE target_settings (
    target      TEXT PRIMARY KEY,
    retention   TEXT,                -- cairn_retention::Policy as JSON
    every_secs  INTEGER,             -- interval of automatic backups; 0 = none
    updated_at  INTEGER NOT NULL
) STRICT;
