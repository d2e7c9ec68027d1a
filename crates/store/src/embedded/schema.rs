//! The embedded store's SQL schema and its migrations (keyed by `PRAGMA user_version`).

use rusqlite::Connection;

use crate::{Result, StoreError};

/// Each entry migrates from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE domains (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL
);
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY,
    address TEXT NOT NULL UNIQUE,
    domain_id INTEGER NOT NULL REFERENCES domains(id),
    password_hash TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE aliases (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    domain_id INTEGER NOT NULL REFERENCES domains(id),
    UNIQUE (source, target)
);
CREATE TABLE mailboxes (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    name TEXT NOT NULL,
    special_use TEXT,
    uid_validity INTEGER NOT NULL,
    uid_next INTEGER NOT NULL DEFAULT 1,
    highest_modseq INTEGER NOT NULL DEFAULT 1,
    subscribed INTEGER NOT NULL DEFAULT 1,
    UNIQUE (account_id, name)
);
-- Message bodies, content-addressed (SHA-256), shared by every copy. Kept in the database
-- (not in files) so that bytes and metadata commit in the same transaction and fsync.
CREATE TABLE blobs (
    id INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
    uid INTEGER NOT NULL,
    blob_id INTEGER NOT NULL REFERENCES blobs(id),
    size INTEGER NOT NULL,
    internal_date INTEGER NOT NULL,
    flags INTEGER NOT NULL DEFAULT 0,
    keywords TEXT NOT NULL DEFAULT '',
    modseq INTEGER NOT NULL,
    UNIQUE (mailbox_id, uid)
);
CREATE INDEX messages_blob ON messages (blob_id);
CREATE TABLE queue (
    id INTEGER PRIMARY KEY,
    sender TEXT,
    blob_id INTEGER NOT NULL REFERENCES blobs(id),
    size INTEGER NOT NULL,
    created INTEGER NOT NULL,
    next_attempt INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX queue_due ON queue (next_attempt);
CREATE INDEX queue_blob ON queue (blob_id);
CREATE TABLE queue_recipients (
    queue_id INTEGER NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT,
    PRIMARY KEY (queue_id, address)
);
"#,
    r#"
-- Expunged UIDs with the MODSEQ of their expunge: QRESYNC VANISHED and session resync.
CREATE TABLE expunged (
    mailbox_id INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX expunged_modseq ON expunged (mailbox_id, modseq);
CREATE INDEX messages_modseq ON messages (mailbox_id, modseq);
-- IMAP subscriptions are names, and may name mailboxes that do not exist (RFC 9051 6.3.7).
CREATE TABLE subscriptions (
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    name TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
);
INSERT INTO subscriptions (account_id, name) SELECT account_id, name FROM mailboxes WHERE subscribed = 1;
"#,
    r#"
-- Per blob, what SEARCH and SORT need (made by the `indexer` crate; opaque bytes here):
-- sort/thread keys and the decoded header fields. Blobs still to summarise are listed in
-- summary_todo, kept by triggers so the indexer never scans the blobs table.
CREATE TABLE summaries (
    blob_id INTEGER PRIMARY KEY,
    keys BLOB NOT NULL,
    headers BLOB NOT NULL
);
CREATE TABLE summary_todo (blob_id INTEGER PRIMARY KEY);
INSERT INTO summary_todo (blob_id) SELECT id FROM blobs;
CREATE TRIGGER blob_added AFTER INSERT ON blobs BEGIN
    INSERT INTO summary_todo (blob_id) VALUES (new.id);
END;
CREATE TRIGGER blob_removed AFTER DELETE ON blobs BEGIN
    DELETE FROM summaries WHERE blob_id = old.id;
    DELETE FROM summary_todo WHERE blob_id = old.id;
END;
"#,
    r#"
-- Per blob, FETCH items rendered once (ENVELOPE, BODYSTRUCTURE; opaque bytes here, made by the
-- indexer with the summary). A table of its own keeps summary scans small. Every blob is
-- summarised again to fill it.
CREATE TABLE fetch_parts (
    blob_id INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);
DROP TRIGGER blob_removed;
CREATE TRIGGER blob_removed AFTER DELETE ON blobs BEGIN
    DELETE FROM summaries WHERE blob_id = old.id;
    DELETE FROM fetch_parts WHERE blob_id = old.id;
    DELETE FROM summary_todo WHERE blob_id = old.id;
END;
INSERT OR IGNORE INTO summary_todo (blob_id) SELECT id FROM blobs;
"#,
    r#"
-- Per blob, the decoded, case-folded body text (made by the indexer with the summary; opaque
-- bytes here): SEARCH BODY and TEXT scan it instead of parsing every message. A table of its
-- own keeps header scans small. Every blob is summarised again to fill it.
CREATE TABLE body_text (
    blob_id INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);
DROP TRIGGER blob_removed;
CREATE TRIGGER blob_removed AFTER DELETE ON blobs BEGIN
    DELETE FROM summaries WHERE blob_id = old.id;
    DELETE FROM fetch_parts WHERE blob_id = old.id;
    DELETE FROM body_text WHERE blob_id = old.id;
    DELETE FROM summary_todo WHERE blob_id = old.id;
END;
INSERT OR IGNORE INTO summary_todo (blob_id) SELECT id FROM blobs;
"#,
    r#"
-- Per blob, its size in canonical form (every line ended by CRLF; `crate::canonical_size`),
-- which POP3 reports and sends. A table of its own: a column after `data` in `blobs` would be
-- read by walking the blob's overflow pages. Filled at insert; existing blobs are filled by
-- `backfill_canonical_sizes` right after this step.
CREATE TABLE blob_lines (
    blob_id INTEGER PRIMARY KEY,
    canonical_size INTEGER NOT NULL
);
CREATE TRIGGER blob_lines_removed AFTER DELETE ON blobs BEGIN
    DELETE FROM blob_lines WHERE blob_id = old.id;
END;
"#,
    r#"
-- Large bodies live in the blob log (segment files beside the database, see blob_log.rs):
-- such a row has segment and offset set and an empty data. log_garbage lists segments that
-- lost records since their space was last reclaimed.
ALTER TABLE blobs ADD COLUMN segment INTEGER;
ALTER TABLE blobs ADD COLUMN offset INTEGER;
CREATE INDEX blobs_segment ON blobs (segment, offset) WHERE segment IS NOT NULL;
CREATE TABLE log_garbage (segment INTEGER PRIMARY KEY);
-- Per segment, an offset below which every record is known durable (see blob_log.rs): after a
-- crash only the records above it are verified.
CREATE TABLE log_durable (segment INTEGER PRIMARY KEY, offset INTEGER NOT NULL);
CREATE TRIGGER blob_logged_removed AFTER DELETE ON blobs WHEN old.segment IS NOT NULL BEGIN
    INSERT OR IGNORE INTO log_garbage (segment) VALUES (old.segment);
END;
"#,
    r#"
-- Blob ids are never reused (a rowid is, once the newest row is deleted): whoever holds an id
-- (a POP3 snapshot, a FETCH between its two reads, the indexer) finds that blob or none,
-- never another message. put_blob takes one more than the newest id or last_blob, the highest
-- id ever deleted, whichever is larger; the trigger keeps last_blob on deletion, so that an
-- insert (every delivery) writes no extra page.
INSERT OR REPLACE INTO meta (key, value)
    VALUES ('last_blob', (SELECT coalesce(max(id), 0) FROM blobs));
CREATE TRIGGER blob_deleted_id AFTER DELETE ON blobs BEGIN
    UPDATE meta SET value = old.id WHERE key = 'last_blob' AND value < old.id;
END;
"#,
    r#"
-- The queue runner: a lease flag (a claimed entry's next_attempt is when its lease lapses),
-- the time of the last attempt, whether a delay warning went out, and per recipient the RFC
-- 3463 code and the host of its last result (for DSNs and `postern queue show`).
ALTER TABLE queue ADD COLUMN leased INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue ADD COLUMN last_attempt INTEGER;
ALTER TABLE queue ADD COLUMN warned INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_recipients ADD COLUMN status_code TEXT;
ALTER TABLE queue_recipients ADD COLUMN remote_mta TEXT;
"#,
    r#"
-- The canonical size moves from blob_lines into the message row, which every delivery writes
-- anyway: one b-tree page fewer per delivery (each page is a WAL frame written and synced
-- before "250"). NULL only where blob_lines had no row; readers then count it from the body.
ALTER TABLE messages ADD COLUMN canonical_size INTEGER;
UPDATE messages SET canonical_size =
    (SELECT l.canonical_size FROM blob_lines l WHERE l.blob_id = messages.blob_id);
DROP TRIGGER blob_lines_removed;
DROP TABLE blob_lines;
"#,
    r#"
-- The indexer's to-do list gives way to a watermark, for the same reason (its row was one
-- more page per delivery): every blob below meta 'summarized_below' has a summary, and the
-- blobs to summarise are those at or above it without one (blob ids only grow, see version
-- 8). Blobs the list held for summarising again lose their summary, so the rule finds them;
-- every other blob has one, so the mark starts at the oldest listed blob that still exists.
INSERT OR REPLACE INTO meta (key, value) VALUES ('summarized_below', coalesce(
    (SELECT min(t.blob_id) FROM summary_todo t WHERE EXISTS (SELECT 1 FROM blobs b WHERE b.id = t.blob_id)),
    (SELECT coalesce(max(id), 0) + 1 FROM blobs)));
DELETE FROM summaries WHERE blob_id IN (SELECT blob_id FROM summary_todo);
DROP TRIGGER blob_added;
DROP TRIGGER blob_removed;
DROP TABLE summary_todo;
CREATE TRIGGER blob_removed AFTER DELETE ON blobs BEGIN
    DELETE FROM summaries WHERE blob_id = old.id;
    DELETE FROM fetch_parts WHERE blob_id = old.id;
    DELETE FROM body_text WHERE blob_id = old.id;
END;
"#,
];

/// Schema version that introduced `blob_lines` (moved into `messages` by version 10).
const BLOB_LINES_VERSION: usize = 6;

/// Brings the schema up to date; safe to run from several processes (it takes the write lock).
pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version as usize > MIGRATIONS.len() {
        // A newer binary wrote this database (e.g. bodies in the blob log an older one cannot
        // read): refuse rather than serve empty messages.
        return Err(StoreError::Unavailable(
            "the database was written by a newer version of postern",
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql)?;
        if i + 1 == BLOB_LINES_VERSION {
            backfill_canonical_sizes(&tx)?;
        }
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
    }
    Ok(tx.commit()?)
}

/// Fills `blob_lines` for the blobs stored before it existed (one pass over the blobs, once).
fn backfill_canonical_sizes(c: &Connection) -> rusqlite::Result<()> {
    let mut put = c.prepare("INSERT INTO blob_lines (blob_id, canonical_size) VALUES (?1, ?2)")?;
    let mut stmt = c.prepare("SELECT id, data FROM blobs")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let size = match r.get_ref(1)? {
            rusqlite::types::ValueRef::Blob(b) | rusqlite::types::ValueRef::Text(b) => {
                crate::canonical_size(b)
            }
            _ => 0,
        };
        put.execute(rusqlite::params![id, size as i64])?;
    }
    Ok(())
}
