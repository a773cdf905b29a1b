-- staff_tokens: bearer tokens of préfecture staff, stored as hashes only.
-- (postgresql twin of ../sqlite/0003_staff_tokens.sql)
create table staff_tokens (
    id          text primary key,
    name        text not null,
    role        text not null check (role in ('admin', 'staff', 'auditor')),
    token_hash  text not null unique,
    created_at  timestamptz not null,
    created_by  text,
    revoked_at  timestamptz
);
