-- Daily salts, shared by every Headcount instance on this ClickHouse, stored
-- ONLY sealed (XChaCha20-Poly1305) under the operator's key, which never
-- enters ClickHouse. One partition per day so a day's salt is destroyed with
-- DROP PARTITION; old_parts_lifetime and cleanup_delay_period make dropped
-- and merged-away parts leave the disk within about a minute instead of the
-- default eight.
CREATE TABLE IF NOT EXISTS salts
(
    day Date,
    proposal_id FixedString(16),
    proposed_at DateTime('UTC'),
    key_fingerprint String,
    nonce FixedString(24),
    sealed String
)
ENGINE = MergeTree()
PARTITION BY day
ORDER BY (day, proposed_at, proposal_id)
SETTINGS old_parts_lifetime = 30, cleanup_delay_period = 5;
