-- nothing to change on sqlite (this file keeps the two migration folders paired): an
-- index on sqlite ends with the row's id, so outbox_due already keeps due mails by
-- time, then by id, the order a claim takes them in. the postgresql twin,
-- ../postgres/0029_outbox_due_in_claim_order.sql, adds the id to its index.
select 1;
