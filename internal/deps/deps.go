//go:build tools

// Package deps pins the project's direct dependencies while the packages that use them are
// being written, so go.sum is complete for every helper. Remove once each is imported for real.
package deps

import (
	_ "github.com/bwmarrin/discordgo"
	_ "github.com/cenkalti/backoff/v4"
	_ "github.com/coder/websocket"
	_ "github.com/google/uuid"
	_ "github.com/gorilla/websocket"
	_ "github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/joho/godotenv"
	_ "github.com/philippseith/signalr"
	_ "github.com/pquerna/otp/totp"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "go.uber.org/goleak"
	_ "golang.org/x/time/rate"
)
