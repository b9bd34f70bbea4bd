package bridge

import "github.com/resonite-bridge/resonite-bridge/resonite"

// Thin names for the resonite helpers the renderers use.

func assetURL(uri string) string { return resonite.AssetURL(uri) }

func stripRichText(s string) string { return resonite.StripRichText(s) }

func sessionURL(id string) string { return resonite.SessionURL(id) }

func resolveSession(st resonite.UserStatus, known []resonite.SessionInfo) (resonite.SessionInfo, bool) {
	return resonite.ResolveSession(st, known)
}
