package main

import (
	"encoding/base32"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/joho/godotenv"
)

// Defaults of the configuration contract (design.md).
const (
	defaultDiscordAPIURL  = "https://discord.com"
	defaultResoniteAPIURL = "https://api.resonite.com"
	// defaultResoniteAssetsURL is where assets are downloaded from; links shown in Discord
	// always name it.
	defaultResoniteAssetsURL = "https://assets.resonite.com"
	defaultDatabaseURL       = "postgres://postgres@localhost:5432/resonite_bridge?sslmode=disable"
	defaultHTTPAddr          = "localhost:9464"
	defaultLogLevel          = "info"
	defaultLogFormat         = "text"
)

// redactedMark replaces every secret in a dump of the configuration.
const redactedMark = "REDACTED"

// envVar documents one environment variable; the table drives -h and the tests.
type envVar struct {
	Name    string
	Default string // as shown to the user
	Secret  bool
	Help    string
}

// envVars is the configuration contract, in the order -h prints it.
var envVars = []envVar{
	{Name: "DISCORD_TOKEN", Default: "required", Secret: true,
		Help: "Discord bot token (a leading \"Bot \" is accepted and stripped)."},
	{Name: "DISCORD_GUILD_ID", Default: "empty",
		Help: "Register slash commands in this guild only (instant) instead of globally."},
	{Name: "DISCORD_API_URL", Default: defaultDiscordAPIURL,
		Help: "Origin replacing https://discord.com for every REST call (a REST proxy or a test fake)."},
	{Name: "RESONITE_USERNAME", Default: "required unless a stored session is still valid",
		Help: "Username or e-mail of the Resonite bridge account."},
	{Name: "RESONITE_PASSWORD", Default: "required unless a stored session is still valid", Secret: true,
		Help: "Password of the Resonite bridge account."},
	{Name: "RESONITE_TOTP_SECRET", Default: "empty", Secret: true,
		Help: "Base32 2FA secret; a fresh code is generated at every login."},
	{Name: "RESONITE_TOTP", Default: "empty", Secret: true,
		Help: "A one-time 6-digit 2FA code, used for the first login only."},
	{Name: "RESONITE_API_URL", Default: defaultResoniteAPIURL,
		Help: "Resonite REST base URL."},
	{Name: "RESONITE_HUB_URL", Default: "${RESONITE_API_URL}/hub",
		Help: "Resonite SignalR hub URL (http, https, ws or wss)."},
	{Name: "RESONITE_MACHINE_ID", Default: "generated once, stored in the database", Secret: true,
		Help: "secretMachineId sent at login."},
	{Name: "RESONITE_UID", Default: "generated once, stored in the database",
		Help: "UID header identifying this installation."},
	{Name: "RESONITE_AUTO_ACCEPT_CONTACTS", Default: "false",
		Help: "Accept incoming Resonite contact requests automatically (true/false)."},
	{Name: "RESONITE_ASSETS_URL", Default: defaultResoniteAssetsURL,
		Help: "Base of asset downloads (voice messages): resdb:///H.ext is fetched from ${RESONITE_ASSETS_URL}/H.ext."},
	{Name: "BRIDGE_SECRET_KEY", Default: "empty (tokens stored plain)", Secret: true,
		Help: "When set, webhook tokens and the Resonite session are stored encrypted (AES-GCM) with a key derived from it; at least 16 characters, e.g. the output of `openssl rand -base64 32`. Keep it: a start with another key, or none, is refused."},
	{Name: "DATABASE_URL", Default: defaultDatabaseURL, Secret: true, // only its password is secret
		Help: "PostgreSQL connection string (URL or key=value form)."},
	{Name: "HTTP_ADDR", Default: defaultHTTPAddr,
		Help: "host:port serving /healthz, /readyz and /metrics."},
	{Name: "LOG_LEVEL", Default: defaultLogLevel,
		Help: "debug, info, warn or error."},
	{Name: "LOG_FORMAT", Default: defaultLogFormat,
		Help: "text or json."},
}

// Config is the validated configuration. Build it with loadConfig; a zero Config is not valid.
type Config struct {
	DiscordToken   string // bare token, without the "Bot " prefix
	DiscordGuildID string // empty: commands are registered globally
	DiscordAPIURL  string // origin without a trailing slash

	ResoniteUsername   string
	ResonitePassword   string
	ResoniteTOTPSecret string // normalised: upper case, no spaces or padding
	ResoniteTOTP       string
	ResoniteAPIURL     string // without a trailing slash
	ResoniteHubURL     string
	ResoniteAssetsURL  string // without a trailing slash
	ResoniteMachineID  string // empty: generated once and stored in the database
	ResoniteUID        string // empty: generated once and stored in the database

	ResoniteAutoAcceptContacts bool

	BridgeSecretKey string // empty: secrets at rest stay plain

	DatabaseURL string
	HTTPAddr    string
	LogLevel    slog.Level
	LogFormat   string // "text" or "json"
}

// NeedsStoredSession reports that no Resonite credentials were configured, so the daemon can
// only start from a stored session that is still valid.
func (c *Config) NeedsStoredSession() bool {
	return c.ResoniteUsername == "" || c.ResonitePassword == ""
}

// ConfigError lists every configuration problem, one line each, naming the variable.
type ConfigError struct {
	Problems []string
}

func (e *ConfigError) Error() string {
	return strings.Join(e.Problems, "\n")
}

// configMode selects which variables are required: migrate needs only the database.
type configMode int

const (
	modeDaemon configMode = iota
	modeMigrate
)

// loadConfig builds the configuration from environ (the real environment, which wins) and the
// .env file at dotenvPath when that file exists. It is a pure function of its arguments apart
// from reading that file. All problems are returned at once in a *ConfigError.
func loadConfig(environ map[string]string, dotenvPath string, mode configMode) (*Config, error) {
	var problems []string
	addf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	values := map[string]string{}
	if dotenvPath != "" {
		fileVals, err := godotenv.Read(dotenvPath)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// The file is optional.
		case err != nil:
			// godotenv's parse errors quote the file's text, which may hold secrets: never echo them.
			addf("%s: cannot be read as KEY=value lines (check quoting); fix or remove the file", dotenvPath)
		default:
			for k, v := range fileVals {
				values[k] = v
			}
		}
	}
	for k, v := range environ {
		values[k] = v // the real environment wins, even when it sets a variable to empty
	}
	get := func(name string) string { return strings.TrimSpace(values[name]) }
	orDefault := func(name, def string) string {
		if v := get(name); v != "" {
			return v
		}
		return def
	}

	c := &Config{}

	// Discord.
	c.DiscordToken = strings.TrimSpace(strings.TrimPrefix(get("DISCORD_TOKEN"), "Bot "))
	switch {
	case c.DiscordToken == "" && mode == modeDaemon:
		addf("DISCORD_TOKEN: required (the bot token from the Discord developer portal)")
	case strings.ContainsFunc(c.DiscordToken, isSpaceOrControl):
		addf("DISCORD_TOKEN: must not contain spaces or control characters")
	}
	c.DiscordGuildID = get("DISCORD_GUILD_ID")
	if c.DiscordGuildID != "" && !isSnowflake(c.DiscordGuildID) {
		addf("DISCORD_GUILD_ID: must be a Discord snowflake (the numeric server id), got %q", c.DiscordGuildID)
	}
	c.DiscordAPIURL = strings.TrimRight(orDefault("DISCORD_API_URL", defaultDiscordAPIURL), "/")
	if msg := checkURL(c.DiscordAPIURL, "http", "https"); msg != "" {
		addf("DISCORD_API_URL: %s", msg)
	} else if u, _ := url.Parse(c.DiscordAPIURL); u.Path != "" || u.RawQuery != "" {
		addf("DISCORD_API_URL: must be an origin such as https://discord.com, without a path or query")
	}

	// Resonite.
	c.ResoniteUsername = get("RESONITE_USERNAME")
	c.ResonitePassword = values["RESONITE_PASSWORD"] // passwords may legitimately have edge spaces
	if c.ResoniteUsername != "" && c.ResonitePassword == "" {
		addf("RESONITE_PASSWORD: required when RESONITE_USERNAME is set")
	}
	if c.ResoniteUsername == "" && c.ResonitePassword != "" {
		addf("RESONITE_USERNAME: required when RESONITE_PASSWORD is set")
	}
	if secret := get("RESONITE_TOTP_SECRET"); secret != "" {
		norm, ok := normaliseTOTPSecret(secret)
		if !ok {
			addf("RESONITE_TOTP_SECRET: must be a base32 secret (letters A-Z and digits 2-7)")
		}
		c.ResoniteTOTPSecret = norm
	}
	c.ResoniteTOTP = strings.ReplaceAll(get("RESONITE_TOTP"), " ", "")
	if c.ResoniteTOTP != "" && !sixDigits.MatchString(c.ResoniteTOTP) {
		addf("RESONITE_TOTP: must be a 6-digit code")
	}
	c.ResoniteAPIURL = strings.TrimRight(orDefault("RESONITE_API_URL", defaultResoniteAPIURL), "/")
	apiOK := true
	if msg := checkURL(c.ResoniteAPIURL, "http", "https"); msg != "" {
		addf("RESONITE_API_URL: %s", msg)
		apiOK = false
	}
	c.ResoniteHubURL = get("RESONITE_HUB_URL")
	if c.ResoniteHubURL == "" {
		if apiOK {
			c.ResoniteHubURL = c.ResoniteAPIURL + "/hub"
		}
	} else if msg := checkURL(c.ResoniteHubURL, "http", "https", "ws", "wss"); msg != "" {
		addf("RESONITE_HUB_URL: %s", msg)
	}
	c.ResoniteAssetsURL = strings.TrimRight(orDefault("RESONITE_ASSETS_URL", defaultResoniteAssetsURL), "/")
	if msg := checkURL(c.ResoniteAssetsURL, "http", "https"); msg != "" {
		addf("RESONITE_ASSETS_URL: %s", msg)
	}
	c.ResoniteMachineID = get("RESONITE_MACHINE_ID")
	if strings.ContainsFunc(c.ResoniteMachineID, isSpaceOrControl) {
		addf("RESONITE_MACHINE_ID: must not contain spaces or control characters")
	}
	c.ResoniteUID = get("RESONITE_UID")
	if strings.ContainsFunc(c.ResoniteUID, isSpaceOrControl) {
		addf("RESONITE_UID: must not contain spaces or control characters (it is sent as an HTTP header)")
	}
	if v := get("RESONITE_AUTO_ACCEPT_CONTACTS"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			addf("RESONITE_AUTO_ACCEPT_CONTACTS: must be true or false, got %q", v)
		}
		c.ResoniteAutoAcceptContacts = b
	}

	c.BridgeSecretKey = get("BRIDGE_SECRET_KEY")
	if c.BridgeSecretKey != "" && len(c.BridgeSecretKey) < 16 {
		addf("BRIDGE_SECRET_KEY: too short (%d characters, at least 16); make one with: openssl rand -base64 32", len(c.BridgeSecretKey))
	}

	// Database, HTTP, logging.
	c.DatabaseURL = orDefault("DATABASE_URL", defaultDatabaseURL)
	if _, err := pgxpool.ParseConfig(c.DatabaseURL); err != nil {
		addf("DATABASE_URL: cannot be parsed: %s", scrubSecrets(err.Error(), dsnPasswords(c.DatabaseURL)))
	}
	c.HTTPAddr = orDefault("HTTP_ADDR", defaultHTTPAddr)
	if msg := checkHostPort(c.HTTPAddr); msg != "" {
		addf("HTTP_ADDR: %s", msg)
	}
	switch lvl := strings.ToLower(orDefault("LOG_LEVEL", defaultLogLevel)); lvl {
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "info":
		c.LogLevel = slog.LevelInfo
	case "warn":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	default:
		addf("LOG_LEVEL: must be one of debug, info, warn, error; got %q", lvl)
	}
	c.LogFormat = strings.ToLower(orDefault("LOG_FORMAT", defaultLogFormat))
	if c.LogFormat != "text" && c.LogFormat != "json" {
		addf("LOG_FORMAT: must be text or json; got %q", c.LogFormat)
	}

	if len(problems) > 0 {
		return nil, &ConfigError{Problems: problems}
	}
	return c, nil
}

var (
	sixDigits = regexp.MustCompile(`^[0-9]{6}$`)
	snowflake = regexp.MustCompile(`^[0-9]{1,20}$`)
)

func isSnowflake(s string) bool {
	if !snowflake.MatchString(s) {
		return false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return err == nil && n > 0
}

func isSpaceOrControl(r rune) bool {
	return r <= ' ' || r == 0x7f
}

// normaliseTOTPSecret accepts the forms authenticator apps show (lower case, grouped with spaces,
// with or without padding) and returns the canonical unpadded upper-case form.
func normaliseTOTPSecret(s string) (string, bool) {
	s = strings.ToUpper(strings.Join(strings.Fields(s), ""))
	s = strings.TrimRight(s, "=")
	b, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(s)
	return s, err == nil && len(b) > 0
}

// checkURL returns "" when raw is an absolute URL with one of the schemes and a host, and
// otherwise a message that never repeats the URL's userinfo.
func checkURL(raw string, schemes ...string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "is not a valid URL"
	}
	ok := false
	for _, s := range schemes {
		if strings.EqualFold(u.Scheme, s) {
			ok = true
		}
	}
	switch {
	case !ok:
		return fmt.Sprintf("scheme must be %s", strings.Join(schemes, " or "))
	case u.Host == "" || u.Hostname() == "":
		return "must include a host"
	case u.User != nil:
		return "must not contain credentials"
	case u.Fragment != "":
		return "must not contain a fragment"
	}
	return ""
}

func checkHostPort(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("must be host:port (e.g. %s), got %q", defaultHTTPAddr, addr)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || (n == 0 && port != "0") {
		return fmt.Sprintf("port must be a number from 0 to 65535, got %q", port)
	}
	return ""
}

var kvPassword = regexp.MustCompile(`(?i)password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&]*)`)

// dsnPasswords finds, best effort, every substring of a connection string that could be its
// password (URL userinfo, password= parameters, raw and decoded), longest first.
func dsnPasswords(dsn string) []string {
	var out []string
	add := func(s string) {
		s = strings.Trim(s, "'")
		if s == "" {
			return
		}
		out = append(out, s)
		if d, err := url.PathUnescape(s); err == nil && d != s {
			out = append(out, d)
		}
	}
	if _, rest, ok := strings.Cut(dsn, "://"); ok {
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if _, pw, ok := strings.Cut(rest[:at], ":"); ok {
				add(pw)
			}
		}
	}
	for _, m := range kvPassword.FindAllStringSubmatch(dsn, -1) {
		add(m[1])
	}
	return out
}

// scrubSecrets replaces every occurrence of each secret in s.
func scrubSecrets(s string, secrets []string) string {
	// Longest first, so a secret containing another is removed whole.
	for changed := true; changed; {
		changed = false
		for i := 1; i < len(secrets); i++ {
			if len(secrets[i]) > len(secrets[i-1]) {
				secrets[i], secrets[i-1] = secrets[i-1], secrets[i]
				changed = true
			}
		}
	}
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, redactedMark)
		}
	}
	return s
}

// redactDSN masks the password of a connection string, in URL or key=value form.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), redactedMark)
		}
		q := u.Query()
		for k := range q {
			if strings.EqualFold(k, "password") || strings.EqualFold(k, "sslpassword") {
				q.Set(k, redactedMark)
			}
		}
		u.RawQuery = q.Encode()
		return scrubSecrets(u.String(), dsnPasswords(dsn))
	}
	return scrubSecrets(dsn, dsnPasswords(dsn))
}

func redactIfSet(s string) string {
	if s == "" {
		return ""
	}
	return redactedMark
}

// LogValue lets slog print the configuration with every secret redacted.
func (c *Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("DISCORD_TOKEN", redactIfSet(c.DiscordToken)),
		slog.String("DISCORD_GUILD_ID", c.DiscordGuildID),
		slog.String("DISCORD_API_URL", c.DiscordAPIURL),
		slog.String("RESONITE_USERNAME", c.ResoniteUsername),
		slog.String("RESONITE_PASSWORD", redactIfSet(c.ResonitePassword)),
		slog.String("RESONITE_TOTP_SECRET", redactIfSet(c.ResoniteTOTPSecret)),
		slog.String("RESONITE_TOTP", redactIfSet(c.ResoniteTOTP)),
		slog.String("RESONITE_API_URL", c.ResoniteAPIURL),
		slog.String("RESONITE_HUB_URL", c.ResoniteHubURL),
		slog.String("RESONITE_ASSETS_URL", c.ResoniteAssetsURL),
		slog.String("RESONITE_MACHINE_ID", redactIfSet(c.ResoniteMachineID)),
		slog.String("RESONITE_UID", c.ResoniteUID),
		slog.Bool("RESONITE_AUTO_ACCEPT_CONTACTS", c.ResoniteAutoAcceptContacts),
		slog.String("BRIDGE_SECRET_KEY", redactIfSet(c.BridgeSecretKey)),
		slog.String("DATABASE_URL", redactDSN(c.DatabaseURL)),
		slog.String("HTTP_ADDR", c.HTTPAddr),
		slog.String("LOG_LEVEL", strings.ToLower(c.LogLevel.String())),
		slog.String("LOG_FORMAT", c.LogFormat),
	)
}

// String renders the configuration as KEY=value lines with every secret redacted.
func (c *Config) String() string {
	var b strings.Builder
	for _, a := range c.LogValue().Group() {
		fmt.Fprintf(&b, "%s=%s\n", a.Key, a.Value.String())
	}
	return b.String()
}

// environMap turns os.Environ-style KEY=value entries into a map.
func environMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}
