-- audit_events: what staff and applicants did, in order. append-only: the triggers
-- refuse any update or delete. no personal data: ids, actions and states only.
create table audit_events (
    id         integer primary key,
    at         text not null,
    actor      text not null,        -- 'staff:<token id>', 'applicant', 'system'
    action     text not null,        -- e.g. window.created, entry.registered
    window_id  text,
    entry_id   text,
    detail     text not null default '{}'
);

create index audit_events_by_window on audit_events (window_id, id);

create trigger audit_events_no_update before update on audit_events
begin
    select raise(abort, 'audit_events is append-only');
end;

create trigger audit_events_no_delete before delete on audit_events
begin
    select raise(abort, 'audit_events is append-only');
end;
