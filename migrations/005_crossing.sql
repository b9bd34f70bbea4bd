-- Edits and deletions of relayed Discord messages: the last version relayed per
-- message, so that only a newer edit crosses (an update that only adds a link
-- preview, or an old edit read again, does not), and nothing after a deletion.
create table discord_versions (
    message_id  text        primary key,
    pairing_id  bigint      not null references pairings (id) on delete cascade,
    edited_at   timestamptz, -- the last edit relayed; null: none yet
    deleted     boolean     not null default false,
    updated_at  timestamptz not null default now()
);
create index discord_versions_pairing_idx on discord_versions (pairing_id);
