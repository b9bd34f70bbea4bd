-- Initial schema of resonite-bridge.
-- Discord ids (snowflakes) and Resonite ids are kept as text: they are opaque
-- to SQL except where ordering matters (see discord_cursors).

-- A Discord channel paired with one Resonite contact of the bridge account.
create table pairings (
    id               bigint generated always as identity primary key,
    guild_id         text        not null,
    channel_id       text        not null unique,
    contact_id       text        not null,
    contact_username text        not null default '',
    created_by       text        not null default '',
    created_at       timestamptz not null default now(),
    -- The webhook the bridge posts through for this channel.
    webhook_id       text        not null default '',
    webhook_token    text        not null default ''
);
create index pairings_guild_idx   on pairings (guild_id);
create index pairings_contact_idx on pairings (contact_id);

-- Friend-online announcements: contact_id is a Resonite user id or 'all'.
create table subscriptions (
    id         bigint generated always as identity primary key,
    guild_id   text        not null,
    channel_id text        not null,
    contact_id text        not null,
    created_by text        not null default '',
    created_at timestamptz not null default now(),
    unique (channel_id, contact_id)
);
create index subscriptions_contact_idx on subscriptions (contact_id);

-- Relayed messages: the outbox (pending → in_flight → delivered | failed) and,
-- once delivered, the id map between the two sides.
create table relay_messages (
    id              bigint generated always as identity primary key,
    direction       text        not null check (direction in ('to_resonite', 'to_discord')),
    source_id       text        not null,
    pairing_id      bigint      not null references pairings (id) on delete cascade,
    target_id       text,       -- set at enqueue when derivable (to_resonite), else on delivery
    payload         bytea,      -- JSON owned by the bridge; cleared by pruning
    -- The source's own timestamp (Discord message time, Resonite sendTime): a
    -- pairing's rows are delivered in (source_time, id) order.
    source_time     timestamptz not null default now(),
    state           text        not null default 'pending'
                                check (state in ('pending', 'in_flight', 'delivered', 'failed')),
    attempts        integer     not null default 0,
    -- Times a worker took the row. Above 1, an earlier try may have delivered it before the
    -- outcome was recorded (a crash, a timeout): the bridge checks the other side first.
    claims          integer     not null default 0,
    next_attempt_at timestamptz not null default now(),
    lease_until     timestamptz, -- set while in_flight; a crashed worker's row comes back after it
    last_error      text,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    delivered_at    timestamptz,
    -- The idempotency key. source_id leads so that the only index starting
    -- with direction that Claim's head probe can use is relay_messages_open_idx
    -- (before the first ANALYZE the planner cannot tell them apart).
    unique (source_id, direction)
);
-- "Oldest undelivered row of a pairing": the head that blocks later rows,
-- found by Claim and NextDue with one probe per pairing.
create index relay_messages_open_idx on relay_messages (direction, pairing_id, source_time, id)
    where state in ('pending', 'in_flight');
-- A pairing never has two rows in flight in one direction. Claim's own checks
-- read a snapshot, which a row enqueued with an earlier source_time can slip
-- past under concurrent claims; this makes the database refuse it (Claim
-- retries) and is also Claim's "is anything in flight" probe.
create unique index relay_messages_one_in_flight_idx on relay_messages (direction, pairing_id)
    where state = 'in_flight';
-- Lease expiry scan.
create index relay_messages_lease_idx on relay_messages (lease_until)
    where state = 'in_flight';
-- Map back from the other side's id (reply quoting, loop checks, late echoes).
create index relay_messages_target_idx on relay_messages (direction, target_id)
    where target_id is not null;
-- Pruning by age of finished rows.
create index relay_messages_finished_idx on relay_messages (updated_at)
    where state in ('delivered', 'failed');

-- Catch-up after downtime: the last Discord message relayed per pairing.
create table discord_cursors (
    pairing_id bigint      primary key references pairings (id) on delete cascade,
    message_id text        not null check (message_id ~ '^[0-9]{1,20}$'),
    updated_at timestamptz not null default now()
);

-- Catch-up after downtime: the newest Resonite message time seen per account.
create table resonite_cursors (
    account_id text        primary key,
    last_seen  timestamptz not null,
    updated_at timestamptz not null default now()
);

-- The bridge's Resonite account: a single row. The password is never stored.
create table resonite_account (
    singleton         boolean     primary key default true check (singleton),
    user_id           text        not null default '',
    token             text        not null default '',
    expire            timestamptz,
    secret_machine_id text        not null default '',
    uid               text        not null default '',
    updated_at        timestamptz not null default now()
);
