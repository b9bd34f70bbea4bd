package core

import (
	"encoding/json"
	"fmt"
)

// PayloadVersion is the version of the stored payloads this build writes. Rows written before
// versions existed read as version 0: a to_resonite payload had the same fields; a to_discord
// payload was the Resonite wire message, whose id, senderId, messageType and content keys
// ContactMessage shares, so its text still reads (other kinds lose their details).
const PayloadVersion = 1

// ToResonitePayload is the stored payload of a Discord message on its way to Resonite.
type ToResonitePayload struct {
	Version   int    `json:"v,omitempty"`
	ChannelID string `json:"channelId"`
	MessageID string `json:"messageId"`
	Text      string `json:"text"`
	// AuthorName is the Discord author's display name, for the notice of a deletion.
	AuthorName string `json:"authorName,omitempty"`
	// FromContactID is set on a contact's message relayed to the other contacts of a group
	// channel; ChannelID is empty then, since there is no Discord message to answer under.
	FromContactID string `json:"fromContactId,omitempty"`
}

// ToDiscordPayload is the stored payload of a contact's message on its way to Discord.
type ToDiscordPayload struct {
	Version int `json:"v,omitempty"`
	ContactMessage
}

// EncodeToResonite and the others below are the only way payloads are written and read, so
// that the version is always set and checked.
func EncodeToResonite(p ToResonitePayload) ([]byte, error) {
	p.Version = PayloadVersion
	return json.Marshal(p)
}

func EncodeToDiscord(m ContactMessage) ([]byte, error) {
	return json.Marshal(ToDiscordPayload{Version: PayloadVersion, ContactMessage: m})
}

func DecodeToResonite(b []byte) (ToResonitePayload, error) {
	var p ToResonitePayload
	if err := decode(b, &p, &p.Version); err != nil {
		return ToResonitePayload{}, err
	}
	return p, nil
}

func DecodeToDiscord(b []byte) (ContactMessage, error) {
	var p ToDiscordPayload
	if err := decode(b, &p, &p.Version); err != nil {
		return ContactMessage{}, err
	}
	if p.Version == 0 && p.Kind != "" && p.Kind != KindText {
		// The legacy payload's content of other kinds is wire JSON this build does not read.
		p.Unreadable = true
	}
	return p.ContactMessage, nil
}

func decode(b []byte, into any, version *int) error {
	if len(b) == 0 {
		return fmt.Errorf("decoding payload: empty (pruned?)")
	}
	if err := json.Unmarshal(b, into); err != nil {
		return fmt.Errorf("decoding payload: %w", err)
	}
	if *version > PayloadVersion {
		return fmt.Errorf("decoding payload: version %d is newer than this build's %d", *version, PayloadVersion)
	}
	return nil
}
