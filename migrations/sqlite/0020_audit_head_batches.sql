-- a batch of registrations appends its audit events with one insert and then moves
-- audit_head over all of them with one update (docs/architecture.md, group commit).
-- the head still never moves back and never moves past a missing event: a move by
-- more than one is allowed only when every event in between is already recorded.
-- the one-step move (head first, then the event) stays allowed as before.
drop trigger audit_head_forward_only;

create trigger audit_head_forward_only before update on audit_head
when new.count < old.count
    or (new.count > old.count + 1
        and (select count(*) from audit_events where seq > old.count and seq <= new.count)
            <> new.count - old.count)
begin
    select raise(abort, 'audit_head moves forward one event at a time, or over recorded events only');
end;
