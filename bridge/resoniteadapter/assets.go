package resoniteadapter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// Voice messages are downloaded from the asset store and uploaded to Discord as audio files.

// Limits of a voice message download: within Discord's upload limit (10 MiB without boosts),
// and short enough that a stalled store does not hold up the pairing's other messages.
const (
	DefaultMaxSoundBytes = 8 << 20
	DefaultSoundTimeout  = 20 * time.Second
)

// Assets downloads voice messages from the asset store; it is the bridge's Assets.
type Assets struct {
	base    string // e.g. https://assets.resonite.com, without a trailing slash
	client  *http.Client
	max     int64
	timeout time.Duration
}

// NewAssets downloads from base (RESONITE_ASSETS_URL) with client (nil: a client of its own),
// at most maxBytes (0: DefaultMaxSoundBytes) each within timeout (0: DefaultSoundTimeout).
func NewAssets(base string, client *http.Client, maxBytes int64, timeout time.Duration) *Assets {
	if client == nil {
		client = &http.Client{}
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxSoundBytes
	}
	if timeout <= 0 {
		timeout = DefaultSoundTimeout
	}
	return &Assets{base: strings.TrimRight(base, "/"), client: client, max: maxBytes, timeout: timeout}
}

// errTooLarge: the asset is over the cap.
var errTooLarge = errors.New("the audio is larger than the upload cap")

// FetchSound downloads a voice message's asset: resdb:///<hash>.<ext> from <base>/<hash>.<ext>.
func (a *Assets) FetchSound(ctx context.Context, m core.ContactMessage) (core.File, error) {
	name, ok := assetName(m.SoundAsset)
	if !ok {
		return core.File{}, fmt.Errorf("voice message %s has no resdb asset", m.ID)
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/"+url.PathEscape(name), nil)
	if err != nil {
		return core.File{}, fmt.Errorf("fetching voice asset %s: %w", name, err)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return core.File{}, fmt.Errorf("fetching voice asset %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return core.File{}, fmt.Errorf("fetching voice asset %s: HTTP %d", name, resp.StatusCode)
	}
	if resp.ContentLength > a.max {
		return core.File{}, fmt.Errorf("fetching voice asset %s: %w (%d bytes)", name, errTooLarge, resp.ContentLength)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, a.max+1))
	if err != nil {
		return core.File{}, fmt.Errorf("fetching voice asset %s: %w", name, err)
	}
	if int64(len(data)) > a.max {
		return core.File{}, fmt.Errorf("fetching voice asset %s: %w", name, errTooLarge)
	}
	ext := path.Ext(name)
	if ext == "" {
		ext = ".ogg" // Resonite records voice as Ogg
	}
	ct := resp.Header.Get("Content-Type")
	if ct == "" || ct == "application/octet-stream" {
		ct = audioType(ext)
	}
	return core.File{Name: "voice-message" + strings.ToLower(ext), ContentType: ct, Data: data}, nil
}

// assetName is "<hash>.<ext>" of a resdb:/// URI.
func assetName(uri string) (string, bool) {
	uri = strings.TrimSpace(uri)
	if !strings.HasPrefix(strings.ToLower(uri), "resdb:///") {
		return "", false
	}
	name := uri[len("resdb:///"):]
	if name == "" || strings.ContainsAny(name, "/?#\\ ") {
		return "", false
	}
	return name, true
}

func audioType(ext string) string {
	switch strings.ToLower(ext) {
	case ".wav":
		return "audio/wav"
	case ".mp3":
		return "audio/mpeg"
	case ".flac":
		return "audio/flac"
	}
	return "audio/ogg"
}
