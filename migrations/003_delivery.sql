-- Delivery: the bridge keeps its pairings in memory for the lookups of every
-- relayed message, and must hear of every change to them. The store tells its
-- own process at once; this notification covers every other writer (another
-- process, a hand-made change in psql, a store method that forgets).
create function notify_pairings_changed() returns trigger language plpgsql as $$
begin
    perform pg_notify('pairings_changed', '');
    return null;
end $$;

create trigger pairings_changed
    after insert or update or delete or truncate on pairings
    for each statement execute function notify_pairings_changed();
