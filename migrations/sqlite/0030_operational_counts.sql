-- entry_channel_counts, and an index of the mails given up: what /metrics reports,
-- without reading every entry and every mail at each scrape.
--
-- /metrics counted the registrations by channel over the whole entries table, and
-- the pending and failed mails over the whole outbox (which keeps a row for every
-- mail sent). with a national window's million entries and million mails that was
-- 0.4 s and 0.1 s of work at every scrape, every few seconds for each scraper, on the
-- days the service is busiest (docs/benchmarks.md, twelfth round).
--
-- entry_channel_counts: how many entries were ever registered through each channel,
-- kept by the database in the statement that inserts an entry (entries are never
-- deleted and never change channel), like window_entry_counts (0021). the pending
-- mails are counted from outbox_due, which holds exactly them; outbox_failed holds
-- the few mails given up. (twin of ../postgres/0030_operational_counts.sql)
create table entry_channel_counts (
    channel  text primary key,
    n        bigint not null
);

insert into entry_channel_counts (channel, n)
select channel, count(*) from entries group by channel;

create trigger entries_count_channel after insert on entries
begin
    insert into entry_channel_counts (channel, n) values (new.channel, 1)
    on conflict (channel) do update set n = n + 1;
end;

create index outbox_failed on outbox (failed_at) where failed_at is not null;
