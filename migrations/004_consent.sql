-- Consent: a contact's words and presence reach only the Discord servers (guilds) the contact
-- agreed to. A pairing or a subscription naming a contact exists only while the contact has
-- consented in its guild; until then it waits in consent_requests.

create table consents (
    contact_id text        not null,
    guild_id   text        not null,
    -- The server's name when consent was given, for the contact's !links.
    guild_name text        not null default '',
    granted_at timestamptz not null default now(),
    primary key (contact_id, guild_id)
);
create index consents_guild_idx on consents (guild_id);

-- Pairings and subscriptions made before consent existed count as consented.
insert into consents (contact_id, guild_id)
    select contact_id, guild_id from pairings
    union
    select contact_id, guild_id from subscriptions where contact_id <> 'all'
    on conflict do nothing;

-- A /link or /notify add waiting for the contact's "link NNNNNN". Only a hash of the code is
-- kept; a used row stays a while so that reusing its code is told apart from a wrong one.
create table consent_requests (
    id               bigint generated always as identity primary key,
    kind             text        not null check (kind in ('pairing', 'subscription')),
    guild_id         text        not null,
    guild_name       text        not null default '',
    channel_id       text        not null,
    channel_name     text        not null default '',
    contact_id       text        not null,
    contact_username text        not null default '',
    created_by       text        not null default '',
    code_hash        bytea       not null,
    created_at       timestamptz not null default now(),
    expires_at       timestamptz not null,
    used_at          timestamptz,
    unique (contact_id, code_hash)
);
create unique index consent_requests_waiting_idx on consent_requests (channel_id, contact_id, kind)
    where used_at is null;
create index consent_requests_guild_idx on consent_requests (guild_id) where used_at is null;

-- Wrong codes per contact, for throttling guesses: failures since window_start.
create table consent_failures (
    contact_id   text        primary key,
    failures     integer     not null default 0,
    window_start timestamptz not null default now()
);

-- Contact commands (link, !links, !unlink) already acted upon, by Resonite message id: a live
-- push and a catch-up may both bring the same message.
create table consent_commands (
    message_id text        primary key,
    handled_at timestamptz not null default now()
);

-- Encryption of secrets at rest (BRIDGE_SECRET_KEY): a known text sealed with the key, so that a
-- start with another key (or none) is refused instead of reading garbage.
create table secret_key_check (
    singleton boolean primary key default true check (singleton),
    sealed    text    not null
);
