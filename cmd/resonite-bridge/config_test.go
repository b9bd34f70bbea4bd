package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/resonite-bridge/resonite-bridge/resonite/resonitetest"
	"github.com/resonite-bridge/resonite-bridge/store/storetest"
)

// TestMain checks for leaked goroutines and stops the throwaway PostgreSQL of the end-to-end
// tests, if one was started.
func TestMain(m *testing.M) {
	defer removeDaemonBuild()
	goleak.VerifyTestMain(storetest.M(m), resonitetest.IgnoreLibraryLeaks())
}

// contractVariables is the configuration contract of design.md plus
// RESONITE_AUTO_ACCEPT_CONTACTS, kept here independently of envVars so -h is checked against it.
var contractVariables = []string{
	"DISCORD_TOKEN", "DISCORD_GUILD_ID", "DISCORD_API_URL",
	"RESONITE_USERNAME", "RESONITE_PASSWORD", "RESONITE_TOTP_SECRET", "RESONITE_TOTP",
	"RESONITE_API_URL", "RESONITE_HUB_URL", "RESONITE_MACHINE_ID", "RESONITE_UID",
	"RESONITE_AUTO_ACCEPT_CONTACTS", "RESONITE_ASSETS_URL", "BRIDGE_SECRET_KEY",
	"DATABASE_URL", "HTTP_ADDR", "LOG_LEVEL", "LOG_FORMAT",
}

// noDotenv is a path that never exists, so tests read only the map they pass.
func noDotenv(t *testing.T) string {
	return filepath.Join(t.TempDir(), "absent.env")
}

func mustLoad(t *testing.T, env map[string]string) *Config {
	t.Helper()
	cfg, err := loadConfig(env, noDotenv(t), modeDaemon)
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	return cfg
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	got := mustLoad(t, map[string]string{"DISCORD_TOKEN": "tok"})
	want := &Config{
		DiscordToken:      "tok",
		DiscordAPIURL:     "https://discord.com",
		ResoniteAPIURL:    "https://api.resonite.com",
		ResoniteHubURL:    "https://api.resonite.com/hub",
		ResoniteAssetsURL: "https://assets.resonite.com",
		DatabaseURL:       "postgres://postgres@localhost:5432/resonite_bridge?sslmode=disable",
		HTTPAddr:          "localhost:9464",
		LogLevel:          slog.LevelInfo,
		LogFormat:         "text",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", got, want)
	}
	if !got.NeedsStoredSession() {
		t.Error("without RESONITE_USERNAME/PASSWORD the config must record that a stored session is needed")
	}
}

func TestConfigEveryVariableSet(t *testing.T) {
	t.Parallel()
	base := map[string]string{"DISCORD_TOKEN": "tok"}
	tests := []struct {
		env   map[string]string
		check func(c *Config) any
		want  any
	}{
		{map[string]string{"DISCORD_TOKEN": "abc.def"}, func(c *Config) any { return c.DiscordToken }, "abc.def"},
		{map[string]string{"DISCORD_TOKEN": "Bot abc.def"}, func(c *Config) any { return c.DiscordToken }, "abc.def"},
		{map[string]string{"DISCORD_TOKEN": " abc.def\n"}, func(c *Config) any { return c.DiscordToken }, "abc.def"},
		{map[string]string{"DISCORD_GUILD_ID": "123456789012345678"}, func(c *Config) any { return c.DiscordGuildID }, "123456789012345678"},
		{map[string]string{"DISCORD_API_URL": "http://127.0.0.1:8080/"}, func(c *Config) any { return c.DiscordAPIURL }, "http://127.0.0.1:8080"},
		{map[string]string{"RESONITE_USERNAME": "bridge", "RESONITE_PASSWORD": " pw "}, func(c *Config) any {
			return [3]any{c.ResoniteUsername, c.ResonitePassword, c.NeedsStoredSession()}
		}, [3]any{"bridge", " pw ", false}},
		{map[string]string{"RESONITE_TOTP_SECRET": "jbsw y3dp ehpk 3pxp"}, func(c *Config) any { return c.ResoniteTOTPSecret }, "JBSWY3DPEHPK3PXP"},
		{map[string]string{"RESONITE_TOTP_SECRET": "JBSWY3DPEHPK3PXP===="}, func(c *Config) any { return c.ResoniteTOTPSecret }, "JBSWY3DPEHPK3PXP"},
		{map[string]string{"RESONITE_TOTP": "123 456"}, func(c *Config) any { return c.ResoniteTOTP }, "123456"},
		{map[string]string{"RESONITE_API_URL": "http://127.0.0.1:9000/api/"}, func(c *Config) any {
			return [2]string{c.ResoniteAPIURL, c.ResoniteHubURL}
		}, [2]string{"http://127.0.0.1:9000/api", "http://127.0.0.1:9000/api/hub"}},
		{map[string]string{"RESONITE_ASSETS_URL": "http://assets.local/base/"}, func(c *Config) any { return c.ResoniteAssetsURL }, "http://assets.local/base"},
		{map[string]string{"RESONITE_HUB_URL": "wss://hub.example/hub"}, func(c *Config) any {
			return [2]string{c.ResoniteAPIURL, c.ResoniteHubURL}
		}, [2]string{"https://api.resonite.com", "wss://hub.example/hub"}},
		{map[string]string{"RESONITE_MACHINE_ID": "machine-1"}, func(c *Config) any { return c.ResoniteMachineID }, "machine-1"},
		{map[string]string{"RESONITE_UID": "ABCDEF"}, func(c *Config) any { return c.ResoniteUID }, "ABCDEF"},
		{map[string]string{"RESONITE_AUTO_ACCEPT_CONTACTS": "true"}, func(c *Config) any { return c.ResoniteAutoAcceptContacts }, true},
		{map[string]string{"RESONITE_AUTO_ACCEPT_CONTACTS": "0"}, func(c *Config) any { return c.ResoniteAutoAcceptContacts }, false},
		{map[string]string{"DATABASE_URL": "host=db user=u dbname=x"}, func(c *Config) any { return c.DatabaseURL }, "host=db user=u dbname=x"},
		{map[string]string{"HTTP_ADDR": ":9999"}, func(c *Config) any { return c.HTTPAddr }, ":9999"},
		{map[string]string{"LOG_LEVEL": "DEBUG"}, func(c *Config) any { return c.LogLevel }, slog.LevelDebug},
		{map[string]string{"LOG_LEVEL": "warn"}, func(c *Config) any { return c.LogLevel }, slog.LevelWarn},
		{map[string]string{"LOG_LEVEL": "error"}, func(c *Config) any { return c.LogLevel }, slog.LevelError},
		{map[string]string{"LOG_FORMAT": "json"}, func(c *Config) any { return c.LogFormat }, "json"},
		// Empty means default.
		{map[string]string{"LOG_FORMAT": "", "HTTP_ADDR": " "}, func(c *Config) any { return c.LogFormat + " " + c.HTTPAddr }, "text localhost:9464"},
	}
	for _, tt := range tests {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for k, v := range tt.env {
			env[k] = v
		}
		name := strings.Join(slices.Sorted(maps.Keys(tt.env)), "+") + "=" + strings.Join(slices.Sorted(maps.Values(tt.env)), "+")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := tt.check(mustLoad(t, env)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestConfigProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want string // the single problem line expected
	}{
		{"token missing", map[string]string{}, "DISCORD_TOKEN: required (the bot token from the Discord developer portal)"},
		{"token with space", map[string]string{"DISCORD_TOKEN": "a b"}, "DISCORD_TOKEN: must not contain spaces or control characters"},
		{"guild not numeric", map[string]string{"DISCORD_GUILD_ID": "my-server"}, `DISCORD_GUILD_ID: must be a Discord snowflake (the numeric server id), got "my-server"`},
		{"guild zero", map[string]string{"DISCORD_GUILD_ID": "0"}, `DISCORD_GUILD_ID: must be a Discord snowflake (the numeric server id), got "0"`},
		{"guild overflow", map[string]string{"DISCORD_GUILD_ID": "99999999999999999999"}, `DISCORD_GUILD_ID: must be a Discord snowflake (the numeric server id), got "99999999999999999999"`},
		{"discord url scheme", map[string]string{"DISCORD_API_URL": "ftp://x"}, "DISCORD_API_URL: scheme must be http or https"},
		{"discord url no host", map[string]string{"DISCORD_API_URL": "https://"}, "DISCORD_API_URL: must include a host"},
		{"discord url path", map[string]string{"DISCORD_API_URL": "https://proxy.example/api/v9"}, "DISCORD_API_URL: must be an origin such as https://discord.com, without a path or query"},
		{"discord url relative", map[string]string{"DISCORD_API_URL": "discord.com"}, "DISCORD_API_URL: scheme must be http or https"},
		{"discord url unparsable", map[string]string{"DISCORD_API_URL": "http://[::1"}, "DISCORD_API_URL: is not a valid URL"},
		{"password without username", map[string]string{"RESONITE_PASSWORD": "x"}, "RESONITE_USERNAME: required when RESONITE_PASSWORD is set"},
		{"username without password", map[string]string{"RESONITE_USERNAME": "x"}, "RESONITE_PASSWORD: required when RESONITE_USERNAME is set"},
		{"totp secret not base32", map[string]string{"RESONITE_TOTP_SECRET": "not-base32!"}, "RESONITE_TOTP_SECRET: must be a base32 secret (letters A-Z and digits 2-7)"},
		{"totp secret bad digit", map[string]string{"RESONITE_TOTP_SECRET": "JBSWY3DPEHPK3PX1"}, "RESONITE_TOTP_SECRET: must be a base32 secret (letters A-Z and digits 2-7)"},
		{"totp code short", map[string]string{"RESONITE_TOTP": "12345"}, "RESONITE_TOTP: must be a 6-digit code"},
		{"totp code letters", map[string]string{"RESONITE_TOTP": "12345a"}, "RESONITE_TOTP: must be a 6-digit code"},
		{"api url scheme", map[string]string{"RESONITE_API_URL": "wss://api.resonite.com"}, "RESONITE_API_URL: scheme must be http or https"},
		{"api url credentials", map[string]string{"RESONITE_API_URL": "https://u:p@api.resonite.com"}, "RESONITE_API_URL: must not contain credentials"},
		{"hub url scheme", map[string]string{"RESONITE_HUB_URL": "ftp://api.resonite.com/hub"}, "RESONITE_HUB_URL: scheme must be http or https or ws or wss"},
		{"assets url scheme", map[string]string{"RESONITE_ASSETS_URL": "resdb:///x"}, "RESONITE_ASSETS_URL: scheme must be http or https"},
		{"hub url fragment", map[string]string{"RESONITE_HUB_URL": "wss://api.resonite.com/hub#x"}, "RESONITE_HUB_URL: must not contain a fragment"},
		{"machine id space", map[string]string{"RESONITE_MACHINE_ID": "a b"}, "RESONITE_MACHINE_ID: must not contain spaces or control characters"},
		{"uid space", map[string]string{"RESONITE_UID": "a b"}, "RESONITE_UID: must not contain spaces or control characters (it is sent as an HTTP header)"},
		{"auto accept", map[string]string{"RESONITE_AUTO_ACCEPT_CONTACTS": "yes"}, `RESONITE_AUTO_ACCEPT_CONTACTS: must be true or false, got "yes"`},
		{"http addr no port", map[string]string{"HTTP_ADDR": "localhost"}, `HTTP_ADDR: must be host:port (e.g. localhost:9464), got "localhost"`},
		{"http addr bad port", map[string]string{"HTTP_ADDR": "localhost:http"}, `HTTP_ADDR: port must be a number from 0 to 65535, got "http"`},
		{"http addr big port", map[string]string{"HTTP_ADDR": ":70000"}, `HTTP_ADDR: port must be a number from 0 to 65535, got "70000"`},
		{"log level", map[string]string{"LOG_LEVEL": "verbose"}, `LOG_LEVEL: must be one of debug, info, warn, error; got "verbose"`},
		{"log format", map[string]string{"LOG_FORMAT": "xml"}, `LOG_FORMAT: must be text or json; got "xml"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"DISCORD_TOKEN": "tok"}
			if tt.name == "token missing" {
				env = map[string]string{}
			}
			for k, v := range tt.env {
				env[k] = v
			}
			_, err := loadConfig(env, noDotenv(t), modeDaemon)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("want a *ConfigError, got %v", err)
			}
			if len(ce.Problems) != 1 || ce.Problems[0] != tt.want {
				t.Errorf("problems:\n got %q\nwant [%q]", ce.Problems, tt.want)
			}
		})
	}
}

func TestConfigDatabaseURLProblemHidesPassword(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, dsn, secret string
	}{
		{"url bad port", "postgres://bridge:Sup3rSecretPW@db:notaport/x", "Sup3rSecretPW"},
		{"url encoded password", "postgres://bridge:p%40ssW0rdXYZ@db:99999/x", "p@ssW0rdXYZ"},
		{"url unencoded slash", "postgres://bridge:pa/ssW0rdXYZ@db:5432/x?sslmode=bogus", "pa/ssW0rdXYZ"},
		{"key value", "host=db password=KvSecret123 port=abc", "KvSecret123"},
		{"key value quoted", "host=db password='Kv Secret 456' sslmode=nope", "Kv Secret 456"},
		{"query password", "postgres://db:5432/x?password=QuerySecret789&sslmode=bad", "QuerySecret789"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := loadConfig(map[string]string{"DISCORD_TOKEN": "tok", "DATABASE_URL": tt.dsn}, noDotenv(t), modeDaemon)
			var ce *ConfigError
			if !errors.As(err, &ce) || len(ce.Problems) != 1 {
				t.Fatalf("want one problem, got %v", err)
			}
			if !strings.HasPrefix(ce.Problems[0], "DATABASE_URL: cannot be parsed: ") {
				t.Errorf("problem does not name DATABASE_URL: %q", ce.Problems[0])
			}
			for _, part := range strings.Fields(tt.secret) {
				if strings.Contains(ce.Problems[0], part) {
					t.Errorf("problem leaks the password: %q", ce.Problems[0])
				}
			}
		})
	}
}

func TestConfigReportsAllProblemsAtOnce(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"DISCORD_GUILD_ID":     "x",
		"RESONITE_API_URL":     "nope",
		"RESONITE_TOTP":        "1",
		"HTTP_ADDR":            "nope",
		"LOG_LEVEL":            "loud",
		"LOG_FORMAT":           "yaml",
		"DATABASE_URL":         "postgres://u:pw@h:port/db",
		"RESONITE_UID":         "a\nb",
		"RESONITE_USERNAME":    "bridge",
		"RESONITE_HUB_URL":     "tcp://x",
		"DISCORD_API_URL":      "x",
		"RESONITE_TOTP_SECRET": "1",
	}
	_, err := loadConfig(env, noDotenv(t), modeDaemon)
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("want *ConfigError, got %v", err)
	}
	wantVars := []string{"DISCORD_TOKEN", "DISCORD_GUILD_ID", "DISCORD_API_URL", "RESONITE_PASSWORD",
		"RESONITE_TOTP_SECRET", "RESONITE_TOTP", "RESONITE_API_URL", "RESONITE_HUB_URL", "RESONITE_UID",
		"DATABASE_URL", "HTTP_ADDR", "LOG_LEVEL", "LOG_FORMAT"}
	var gotVars []string
	for _, p := range ce.Problems {
		if strings.Contains(p, "\n") {
			t.Errorf("problem spans several lines: %q", p)
		}
		name, _, _ := strings.Cut(p, ":")
		gotVars = append(gotVars, name)
	}
	if !reflect.DeepEqual(gotVars, wantVars) {
		t.Errorf("problems name\n %q\nwant\n %q\nfull: %s", gotVars, wantVars, err)
	}
	if got := strings.Count(err.Error(), "\n") + 1; got != len(wantVars) {
		t.Errorf("Error() has %d lines, want one per problem (%d)", got, len(wantVars))
	}
}

func TestConfigMigrateModeNeedsNoDiscordToken(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig(map[string]string{"DATABASE_URL": "postgres://x@db/y"}, noDotenv(t), modeMigrate)
	if err != nil {
		t.Fatalf("migrate config: %v", err)
	}
	if cfg.DatabaseURL != "postgres://x@db/y" {
		t.Errorf("DatabaseURL = %q", cfg.DatabaseURL)
	}
	// Format checks still apply.
	if _, err := loadConfig(map[string]string{"LOG_LEVEL": "x"}, noDotenv(t), modeMigrate); err == nil {
		t.Error("migrate mode accepted LOG_LEVEL=x")
	}
}

func TestConfigDotenv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, ".env")
	content := "# comment\nDISCORD_TOKEN=from-file\nLOG_LEVEL=debug\nHTTP_ADDR=127.0.0.1:1111\nRESONITE_UID=file-uid\nexport LOG_FORMAT=json\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		want Config // only the compared fields
	}{
		{"file only", map[string]string{}, Config{DiscordToken: "from-file", LogLevel: slog.LevelDebug, HTTPAddr: "127.0.0.1:1111", ResoniteUID: "file-uid", LogFormat: "json"}},
		{"environment wins", map[string]string{"DISCORD_TOKEN": "from-env", "LOG_LEVEL": "error"}, Config{DiscordToken: "from-env", LogLevel: slog.LevelError, HTTPAddr: "127.0.0.1:1111", ResoniteUID: "file-uid", LogFormat: "json"}},
		// A variable set to empty in the real environment still wins, as with godotenv.Load.
		{"empty environment wins", map[string]string{"RESONITE_UID": "", "HTTP_ADDR": ""}, Config{DiscordToken: "from-file", LogLevel: slog.LevelDebug, HTTPAddr: "localhost:9464", ResoniteUID: "", LogFormat: "json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := loadConfig(tt.env, path, modeDaemon)
			if err != nil {
				t.Fatal(err)
			}
			got := Config{DiscordToken: c.DiscordToken, LogLevel: c.LogLevel, HTTPAddr: c.HTTPAddr, ResoniteUID: c.ResoniteUID, LogFormat: c.LogFormat}
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestConfigBadDotenvDoesNotEchoIt(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), ".env")
	if err := os.WriteFile(path, []byte("RESONITE_PASSWORD=\"UnterminatedSecret\nX=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadConfig(map[string]string{"DISCORD_TOKEN": "tok"}, path, modeDaemon)
	if err == nil {
		t.Fatal("a malformed .env was accepted")
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error does not name the file: %v", err)
	}
	if strings.Contains(err.Error(), "UnterminatedSecret") {
		t.Errorf("error echoes the file's content: %v", err)
	}
}

// secretEnv sets every secret to a distinctive value.
var secretEnv = map[string]string{
	"DISCORD_TOKEN":        "DiscordTokSecret.abc",
	"RESONITE_USERNAME":    "bridgeuser",
	"RESONITE_PASSWORD":    "ResPwSecret",
	"RESONITE_TOTP_SECRET": "JBSWY3DPEHPK3PXP",
	"RESONITE_TOTP":        "918273",
	"RESONITE_MACHINE_ID":  "MachineSecretId",
	"DATABASE_URL":         "postgres://bridge:DbPwSecret@db:5432/rb?sslmode=disable",
}

var secretValues = []string{"DiscordTokSecret", "ResPwSecret", "JBSWY3DPEHPK3PXP", "918273", "MachineSecretId", "DbPwSecret"}

func TestConfigRedaction(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, secretEnv)
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("cfg", "config", cfg)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("cfg", "config", cfg)
	dumps := map[string]string{"String": cfg.String(), "text log": text.String(), "json log": js.String()}
	for name, dump := range dumps {
		for _, s := range secretValues {
			if strings.Contains(dump, s) {
				t.Errorf("%s leaks %q:\n%s", name, s, dump)
			}
		}
		// The non-secret parts stay useful.
		for _, want := range []string{"bridgeuser", "db:5432/rb", "DISCORD_TOKEN", "REDACTED"} {
			if !strings.Contains(dump, want) {
				t.Errorf("%s lacks %q:\n%s", name, want, dump)
			}
		}
	}
	// Every variable of the contract appears in the dump.
	for _, v := range contractVariables {
		if !strings.Contains(cfg.String(), v+"=") {
			t.Errorf("String() lacks %s", v)
		}
	}
}

func TestRedactDSN(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"postgres://u:pw1@h:5432/db?sslmode=disable", "postgres://u:REDACTED@h:5432/db?sslmode=disable"},
		{"postgres://u@h/db", "postgres://u@h/db"},
		{"postgres://h/db?password=pw2", "postgres://h/db?password=REDACTED"},
		{"host=h password=pw3 user=u", "host=h password=REDACTED user=u"},
		{"host=h password='p w4' user=u", "host=h password='REDACTED' user=u"},
	}
	for _, tt := range tests {
		if got := redactDSN(tt.in); got != tt.want {
			t.Errorf("redactDSN(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRunHelpNamesEveryVariable(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"-h", "--help", "-help", "help"} {
		var stdout, stderr bytes.Buffer
		code := runWith(context.Background(), []string{arg}, nil, &stdout, &stderr, hooks{})
		if code != exitOK {
			t.Errorf("%s: exit %d, want 0; stderr %s", arg, code, stderr.String())
		}
		out := stdout.String()
		for _, v := range contractVariables {
			if !strings.Contains(out, "  "+v+"\n") {
				t.Errorf("%s output does not document %s", arg, v)
			}
		}
		for _, word := range []string{"migrate", "healthcheck", "-env-file", "-version"} {
			if !strings.Contains(out, word) {
				t.Errorf("%s output does not mention %s", arg, word)
			}
		}
	}
	// envVars (which drives -h) documents exactly the contract, no more.
	var names []string
	for _, v := range envVars {
		names = append(names, v.Name)
	}
	if !reflect.DeepEqual(names, contractVariables) {
		t.Errorf("envVars = %q\nwant %q", names, contractVariables)
	}
}

func TestRunBadConfigExits2(t *testing.T) {
	t.Parallel()
	env := []string{"DISCORD_GUILD_ID=abc", "LOG_FORMAT=xml", "DATABASE_URL=postgres://u:LeakMe99@h:x/db", "PATH=/bin"}
	var stdout, stderr bytes.Buffer
	code := runWith(context.Background(), []string{"-env-file", noDotenv(t)}, env, &stdout, &stderr, hooks{})
	if code != exitUsage {
		t.Errorf("exit %d, want 2", code)
	}
	out := stderr.String()
	for _, v := range []string{"DISCORD_TOKEN", "DISCORD_GUILD_ID", "LOG_FORMAT", "DATABASE_URL"} {
		if !strings.Contains(out, "\n  "+v+": ") {
			t.Errorf("stderr has no line for %s:\n%s", v, out)
		}
	}
	if strings.Contains(out, "LeakMe99") {
		t.Errorf("stderr leaks the database password:\n%s", out)
	}
}

func TestRunArguments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{[]string{"-version"}, exitOK, "resonite-bridge ", ""},
		{[]string{"-bogus"}, exitUsage, "", "flag provided but not defined: -bogus"},
		{[]string{"frobnicate"}, exitUsage, "", "unexpected arguments: frobnicate"},
		{[]string{"migrate", "extra"}, exitUsage, "", "unexpected arguments: migrate extra"},
		{[]string{"migrate", "-h"}, exitOK, "DATABASE_URL", ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := runWith(context.Background(), tt.args, nil, &stdout, &stderr, hooks{})
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr %s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.inStdout) {
				t.Errorf("stdout %q lacks %q", stdout.String(), tt.inStdout)
			}
			if !strings.Contains(stderr.String(), tt.inStderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.inStderr)
			}
		})
	}
}

func TestRunProductionEntryPointRejectsBadConfig(t *testing.T) {
	// Not parallel: run installs signal handlers for the process.
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-env-file", noDotenv(t)}, []string{"LOG_LEVEL=x"}, &stdout, &stderr); code != exitUsage {
		t.Errorf("exit %d, want 2; stderr %s", code, stderr.String())
	}
}
