-- a batch of registrations appends its audit events with one insert and then moves
-- audit_head over all of them with one update (docs/architecture.md, group commit).
-- (postgresql twin of ../sqlite/0020_audit_head_batches.sql)
-- the head still never moves back and never moves past a missing event: a move by
-- more than one is allowed only when every event in between is already recorded.
-- the one-step move (head first, then the event) stays allowed as before. a trigger's
-- when clause cannot hold a subquery on postgresql, so the check is a function.
create function tirage_audit_head_forward() returns trigger language plpgsql as $$
begin
    if new.count < old.count
        or (new.count > old.count + 1
            and (select count(*) from audit_events where seq > old.count and seq <= new.count)
                <> new.count - old.count) then
        raise exception 'audit_head moves forward one event at a time, or over recorded events only'
            using errcode = 'restrict_violation';
    end if;
    return new;
end;
$$;

drop trigger audit_head_forward_only on audit_head;

create trigger audit_head_forward_only before update on audit_head
for each row execute function tirage_audit_head_forward();
