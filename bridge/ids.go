package bridge

import (
	"strconv"
	"time"

	"github.com/google/uuid"
)

// messageIDNamespace is the fixed namespace of the name-based UUIDs of relayed Discord messages.
// Changing it would make a retry after an upgrade send a second copy; never change it.
var messageIDNamespace = uuid.MustParse("6f1c2a4e-3b7d-5e90-a1c8-2d4b6e8f0a13")

// ResoniteMessageID derives the Resonite message id of a relayed Discord message, so that
// every retry of the same Discord message sends the same Resonite message.
func ResoniteMessageID(discordMessageID string) string {
	return "MSG-" + uuid.NewSHA1(messageIDNamespace, []byte("discord:"+discordMessageID)).String()
}

// discordEpochMs is the first millisecond of 2015, the origin of Discord snowflakes.
const discordEpochMs = 1420070400000

// snowflakeAt is the smallest snowflake of time t: "after snowflakeAt(t)" means "sent after t".
func snowflakeAt(t time.Time) string {
	ms := t.UnixMilli() - discordEpochMs
	if ms < 0 {
		ms = 0
	}
	return strconv.FormatUint(uint64(ms)<<22, 10)
}
