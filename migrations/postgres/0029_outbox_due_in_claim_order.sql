-- outbox_due in the order a claim takes due mails: by time, then by id. a claim takes
-- the first few hundred due mails in that order. with the time alone, equal times were
-- kept in the table's order, not by id, so the server read and sorted every due mail
-- at each claim: when a burst of registrations leaves thousands of mails waiting, each
-- claim read all of them (docs/benchmarks.md, twelfth round). now it reads the index
-- in order and stops at the claim's size. (twin of ../sqlite/0029_outbox_due_in_claim_order.sql)
drop index outbox_due;
create index outbox_due on outbox (next_attempt_at, id) where sent_at is null and failed_at is null;
