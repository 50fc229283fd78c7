-- Exactly-once delivery from the spool (src/store/writer.rs).
--
-- Every row records which write batch brought it (batch_id, random per
-- batch) and its place in that batch (batch_row). When the outcome of an
-- insert is unknown — ClickHouse restarted mid-insert, the connection
-- dropped after the data was sent, Headcount was killed before it noted
-- success — the writer asks which rows of the batch are already stored:
--     SELECT batch_row FROM events WHERE batch_id = ? AND ts BETWEEN ? AND ?
-- and sends only the missing ones. 18.16 has no insert deduplication for
-- plain MergeTree, so this is how a replay never duplicates a row.
-- The batch says nothing about a visitor: it groups whatever events
-- arrived within the same second or so. Rows stored before this migration
-- have batch_id 0.
ALTER TABLE events ADD COLUMN batch_id UInt64;
ALTER TABLE events ADD COLUMN batch_row UInt32;
