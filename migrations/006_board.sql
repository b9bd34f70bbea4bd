-- The live online board (/board) and personal online notifications (/follow).

-- One board per channel. message_id is the message the bridge keeps editing:
-- stored so that a restart edits the same message; '' until it is posted.
create table boards (
    channel_id text        primary key,
    guild_id   text        not null,
    message_id text        not null default '',
    created_by text        not null default '',
    created_at timestamptz not null default now()
);
create index boards_guild_idx on boards (guild_id);

-- A member's direct message when a contact (or 'all' consenting contacts of the
-- guild) comes online. channel_id is where the member ran /follow: where they
-- are told once when their DMs are closed. failures counts refused DMs in a
-- row; the follow is dropped after a few.
create table follows (
    id          bigint generated always as identity primary key,
    guild_id    text        not null,
    channel_id  text        not null,
    user_id     text        not null,
    contact_id  text        not null,
    failures    integer     not null default 0 check (failures >= 0),
    told_closed boolean     not null default false,
    created_at  timestamptz not null default now(),
    unique (guild_id, user_id, contact_id)
);
create index follows_contact_idx on follows (contact_id);
