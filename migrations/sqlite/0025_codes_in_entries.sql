-- the live verification code of an entry moves into the entry's own row.
--
-- verification_codes had one row per pending online entry, keyed by the entry's
-- random id: every registration inserted into its table and into the index of its
-- primary key at a random place, about 1.3 pages of sqlite's log a registration out
-- of 11.6 (docs/benchmarks.md, eighth round). as columns of the entry, the code is
-- written with the entry's row, which the registration writes anyway.
--
-- code_hash is null when the entry has no live code (a counter entry, a verified or
-- withdrawn one, or after the personal data of its window were erased); the other
-- code_ columns then mean nothing. code_attempts counts the wrong codes tried against
-- the live code, code_sends the codes sent to the entry so far.
alter table entries add column code_hash blob;
alter table entries add column code_expires_at text;
alter table entries add column code_attempts bigint not null default 0;
alter table entries add column code_sends bigint not null default 0;
alter table entries add column code_sent_at text;

update entries
set code_hash = v.code_hash,
    code_expires_at = v.expires_at,
    code_attempts = v.attempts,
    code_sends = v.sends,
    code_sent_at = v.sent_at
from verification_codes as v
where v.entry_id = entries.id;

drop table verification_codes;
