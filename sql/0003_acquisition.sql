-- Where visitors come from: location of their network and the traffic source.
-- country/region/city/asn/asn_org are looked up from the IP before it is
-- dropped (only these derived values are stored; empty/0 when unknown or for
-- private addresses); source/channel come from the referrer host and the
-- campaign tags; screen_class from the viewport width and device type.
--
-- One ADD COLUMN per statement: ClickHouse 18.16 has no
-- `ADD COLUMN IF NOT EXISTS`, so the migration runner skips a statement
-- whose column already exists (see src/store/migrate.rs), which keeps a
-- half-applied migration re-runnable. New columns are appended at the end,
-- in the order of the fields of src/store/row.rs.
ALTER TABLE events ADD COLUMN country LowCardinality(String);
ALTER TABLE events ADD COLUMN region LowCardinality(String);
ALTER TABLE events ADD COLUMN city LowCardinality(String);
ALTER TABLE events ADD COLUMN asn UInt32;
ALTER TABLE events ADD COLUMN asn_org LowCardinality(String);
ALTER TABLE events ADD COLUMN source LowCardinality(String);
ALTER TABLE events ADD COLUMN channel LowCardinality(String);
ALTER TABLE events ADD COLUMN screen_class LowCardinality(String);
