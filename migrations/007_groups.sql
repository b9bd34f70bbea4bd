-- Group channels: a channel (or thread) may hold up to 10 pairings, one per
-- contact. The order key stays the pairing.
alter table pairings drop constraint pairings_channel_id_key;
alter table pairings add constraint pairings_channel_contact_key unique (channel_id, contact_id);

-- A Discord message now becomes one to_resonite row per contact of its
-- channel, so its source id names the pairing, as to_discord rows' always did
-- ("<source>:<pairing id>"). Target ids were stored at enqueue and stay, so a
-- row retried after the upgrade is the same Resonite message.
update relay_messages set source_id = source_id || ':' || pairing_id
    where direction = 'to_resonite';

-- The last version relayed is kept per message and pairing.
alter table discord_versions drop constraint discord_versions_pkey;
alter table discord_versions add primary key (message_id, pairing_id);
