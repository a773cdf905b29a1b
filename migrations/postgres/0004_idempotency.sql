-- idempotency_keys: the first answer to a request sent with an Idempotency-Key
-- header, so that a retry gets that answer again instead of a duplicate error.
-- the response holds the receipt (with its access code), so rows expire and are purged.
-- (postgresql twin of ../sqlite/0004_idempotency.sql)
create table idempotency_keys (
    scope        text not null,      -- the operation and its target, e.g. register:<window id>
    key          text not null,
    fingerprint  text not null,      -- sha256 of the canonical request body
    status       bigint not null,
    response     text not null,
    created_at   timestamptz not null,
    expires_at   timestamptz not null,
    primary key (scope, key)
);
