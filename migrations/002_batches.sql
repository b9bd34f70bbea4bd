-- Batched delivery: a claim takes a run of rows of one pairing, and a row
-- keeps how far its delivery got.

-- Delivery progress of a row: how many posts of a message that takes several
-- (a long text) earlier tries made, and the id of the first; and, for a row
-- delivered inside another row's post, that row.
alter table relay_messages
    add column parts_posted    integer not null default 0 check (parts_posted >= 0),
    add column first_target_id text,
    add column coalesced_into  bigint;

-- One batch in flight per pairing and direction. A batch is several in-flight
-- rows, which the unique index of 001 refused; what it guaranteed now comes
-- from relay_claims: a claimer takes the row of (direction, pairing) FOR UPDATE
-- and only then, on a fresh snapshot, checks that nothing of the pairing is in
-- flight and puts the batch in flight. Rows become in_flight only that way, so
-- claimers of one pairing take turns and each sees what the one before it
-- committed. The row is a lock, never updated: settling, rescuing and deleting
-- rows need not touch it (see ClaimBatch in store/outbox.go).
drop index relay_messages_one_in_flight_idx;
-- "Is anything of the pairing in flight": the probe that replaces it.
create index relay_messages_in_flight_idx on relay_messages (direction, pairing_id)
    where state = 'in_flight';

create table relay_claims (
    direction  text   not null check (direction in ('to_resonite', 'to_discord')),
    pairing_id bigint not null references pairings (id) on delete cascade,
    primary key (direction, pairing_id)
);

-- Every pairing has its two claim rows from its creation on, so that a claim
-- only ever locks rows, never inserts them (an insert would wait for a
-- concurrent claimer's instead of skipping it).
create function relay_claims_for_pairing() returns trigger language plpgsql as $$
begin
    insert into relay_claims (direction, pairing_id)
    values ('to_resonite', new.id), ('to_discord', new.id);
    return null;
end $$;
create trigger pairings_relay_claims after insert on pairings
    for each row execute function relay_claims_for_pairing();
insert into relay_claims (direction, pairing_id)
    select d.direction, p.id from pairings p cross join (values ('to_resonite'), ('to_discord')) d (direction);
