-- a draw no longer stores its bundle's bytes (125 MB for a national window): the
-- bundle is rebuilt, when first asked for, from what the close and the draw store
-- already (the packed entries, the slots, the packed ranking, the draws row), and
-- served only if its SHA-256 is the one recorded here at the draw (and in the draw's
-- audit event). windows drawn before keep their `bundles` row, served as it is.
-- twin of ../postgres/0023_bundle_rebuilt.sql.
--
-- bundle_sha256: hex SHA-256 of the bundle as computed at the draw.
-- beacon_evidence: the bundle's `beacon_evidence` (a drand round, RFC 3797 sources)
-- as JSON, null when there is none.
alter table draws add column bundle_sha256 text;
alter table draws add column beacon_evidence text;
