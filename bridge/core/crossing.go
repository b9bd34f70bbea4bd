package core

// DiscordFile is an attachment of a Discord message.
type DiscordFile struct {
	Name string
	URL  string
	// Voice marks a Discord voice message (the IS_VOICE_MESSAGE flag); Seconds is its length.
	Voice   bool
	Seconds float64
}

// File is a file uploaded with a post.
type File struct {
	Name        string
	ContentType string
	Data        []byte
}

// LinkButton is a button under a post that opens URL.
type LinkButton struct {
	Label string
	URL   string
}
