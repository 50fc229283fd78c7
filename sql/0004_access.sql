-- Who may read the dashboards: operators, their login sessions, Stats API
-- keys and shared read-only links. Nothing here is about visitors.
--
-- Secrets are never stored: passwords as argon2id PHC strings, session
-- tokens, API keys and share tokens as BLAKE3 hashes (hex), so a dump of
-- these tables opens no dashboard.
--
-- Rows are never updated in place: a change (new password, revocation,
-- logout) inserts a row with a higher `version` (nanoseconds since the
-- epoch). ReplacingMergeTree keeps the newest row per key after merges;
-- readers take `argMax(column, version)` so the answer is right before
-- merges too. Works on ClickHouse 18.16 and 24+.
CREATE TABLE IF NOT EXISTS users
(
    email String,
    password_hash String,
    all_sites UInt8,
    sites Array(String),
    deleted UInt8,
    updated_at DateTime('UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY email;

-- Dashboard logins and unlocked password-protected shares (share_id set).
-- Expired rows are deleted by Headcount (18.16 has no TTL).
CREATE TABLE IF NOT EXISTS dashboard_sessions
(
    token_hash String,
    email String,
    share_id String,
    created_at DateTime('UTC'),
    expires_at DateTime('UTC'),
    revoked UInt8,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY token_hash;

CREATE TABLE IF NOT EXISTS api_keys
(
    key_hash String,
    prefix String,
    email String,
    name String,
    created_at DateTime('UTC'),
    revoked UInt8,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY key_hash;

CREATE TABLE IF NOT EXISTS shares
(
    id String,
    token_hash String,
    site String,
    password_hash String,
    label String,
    created_by String,
    created_at DateTime('UTC'),
    revoked UInt8,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;
