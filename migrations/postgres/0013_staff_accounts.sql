-- staff_accounts: staff who sign in to the web pages with a user name and a password
-- instead of pasting a staff token. the password is stored as an argon2id phc string
-- only. each account acts through its own row in staff_tokens (whose token_hash is
-- random and never given out), so its role, its revocation and the actor written in
-- the audit trail are those of that token.
-- (postgresql twin of ../sqlite/0013_staff_accounts.sql)
create table staff_accounts (
    username       text collate "C" primary key,
    token_id       text not null unique references staff_tokens (id),
    password_hash  text not null,
    created_at     timestamptz not null,
    updated_at     timestamptz not null
);
