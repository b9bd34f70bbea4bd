package bot_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/bwmarrin/discordgo"

	"github.com/resonite-bridge/resonite-bridge/bot"
	"github.com/resonite-bridge/resonite-bridge/bot/discordtest"
	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

func TestConnectsWithIntentsAndRegistersCommands(t *testing.T) {
	t.Parallel()
	e := newEnv(t).start()
	gw := e.dc.Gateway()
	want := int(discordgo.IntentsGuilds | discordgo.IntentsGuildMessages | discordgo.IntentsMessageContent)
	if gw.Intents != want {
		t.Errorf("intents = %d, want GUILDS|GUILD_MESSAGES|MESSAGE_CONTENT = %d", gw.Intents, want)
	}
	if gw.LastIdentifyToken != "Bot "+e.dc.Token {
		t.Errorf("identify token = %q", gw.LastIdentifyToken)
	}
	cmds := e.dc.Commands(guildID)
	if global := e.dc.Commands(""); len(global) != 0 {
		t.Errorf("with DISCORD_GUILD_ID set, %d commands were registered globally", len(global))
	}
	byName := map[string]*discordgo.ApplicationCommand{}
	for _, c := range cmds {
		byName[c.Name] = c
	}
	for _, tc := range []struct {
		name    string
		admin   bool
		options []string
	}{
		{"sessions", false, []string{"name", "host", "min_users", "include_empty_headless"}},
		{"whois", false, []string{"user"}},
		{"link", true, []string{"contact"}},
		{"unlink", true, []string{"contact"}},
		{"links", true, nil},
		{"notify", true, []string{"add", "remove", "list"}},
		{"status", false, nil},
		{"follow", false, []string{"contact"}},
		{"board", true, []string{"start", "stop"}},
	} {
		c := byName[tc.name]
		if c == nil {
			t.Errorf("/%s not registered", tc.name)
			continue
		}
		switch {
		case tc.admin && (c.DefaultMemberPermissions == nil || *c.DefaultMemberPermissions != discordgo.PermissionManageChannels):
			t.Errorf("/%s default_member_permissions = %v, want Manage Channels", tc.name, c.DefaultMemberPermissions)
		case !tc.admin && c.DefaultMemberPermissions != nil:
			t.Errorf("/%s is restricted (%d), want open to anyone", tc.name, *c.DefaultMemberPermissions)
		}
		var got []string
		for _, o := range c.Options {
			got = append(got, o.Name)
		}
		if !slices.Equal(got, tc.options) {
			t.Errorf("/%s options = %v, want %v", tc.name, got, tc.options)
		}
	}
	if len(cmds) != 9 {
		t.Errorf("%d commands registered, want 9", len(cmds))
	}
	ready, why := e.bot.Ready()
	if !ready {
		t.Errorf("Ready() = false (%s) while connected", why)
	}
}

func TestCommandsRegisteredGloballyWithoutGuild(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *bot.Options) { o.GuildID = "" }).start()
	if n := len(e.dc.Commands("")); n != 9 {
		t.Errorf("%d global commands, want 9", n)
	}
	// A restart overwrites the same set: still 9, not 18.
	e.restart()
	e.dc.WaitCalls(t, 2, func(c discordtest.Call) bool { return c.Method == "PUT" && strings.HasSuffix(c.Path, "/commands") })
	if n := len(e.dc.Commands("")); n != 9 {
		t.Errorf("after a restart: %d global commands, want 9", n)
	}
}

func TestFatalCloseCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(e *env)
		code  int
		hint  string
	}{
		{"message content intent not enabled", func(e *env) { e.dc.DenyPrivilegedIntents(true) }, 4014, "MESSAGE CONTENT INTENT"},
		{"token refused on the gateway", func(e *env) { e.dc.CloseGateway(4004) }, 4004, "DISCORD_TOKEN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			tc.setup(e)
			e.startNoWait()
			err := e.failure()
			var fatal *bot.FatalError
			if !errors.As(err, &fatal) {
				t.Fatalf("Failed delivered %v, want a *bot.FatalError", err)
			}
			if fatal.Code != tc.code || !strings.Contains(fatal.Error(), tc.hint) {
				t.Errorf("fatal error = %d %q, want code %d mentioning %q", fatal.Code, fatal.Error(), tc.code, tc.hint)
			}
			if ok, why := e.bot.Ready(); ok || why == "" {
				t.Errorf("Ready() = %v, %q after a fatal refusal", ok, why)
			}
		})
	}
}

func TestFatalCloseCodeDuringSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t).start()
	e.dc.CloseGateway(4004) // e.g. the token was reset in the portal while running
	var fatal *bot.FatalError
	if err := e.failure(); !errors.As(err, &fatal) || fatal.Code != 4004 {
		t.Fatalf("Failed delivered %v, want a fatal 4004", err)
	}
	if ok, _ := e.bot.Ready(); ok {
		t.Error("Ready() = true after the session was closed with 4004")
	}
}

func TestBadTokenIsFatal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *bot.Options) { o.Token = "not-the-token" })
	e.startNoWait()
	err := e.failure()
	var fatal *bot.FatalError
	if !errors.As(err, &fatal) || !strings.Contains(fatal.Error(), "DISCORD_TOKEN") {
		t.Fatalf("Failed delivered %v, want a fatal error naming DISCORD_TOKEN", err)
	}
	if strings.Contains(err.Error(), "not-the-token") {
		t.Errorf("the error shows the token: %v", err)
	}
}

func TestReconnectResumesAndSignals(t *testing.T) {
	t.Parallel()
	e := newEnv(t).start()
	e.rec.waitUntil(t, "GUILD_CREATE handed over", func() bool { g, _ := e.rec.snapshot(); return slices.Contains(g, guildID) })
	e.dc.DropGateway()
	// A message sent while the socket is down is replayed on resume.
	e.dc.DispatchMessage(discordtest.UserMessage{ChannelID: channelID, Content: "sent during the outage"})
	e.rec.waitUntil(t, "the reconnect callback", func() bool { _, n := e.rec.snapshot(); return n >= 1 })
	e.rec.waitUntil(t, "the message sent during the outage", func() bool {
		return slices.ContainsFunc(e.rec.messages(), func(m core.DiscordMessage) bool { return m.Content == "sent during the outage" })
	})
	if st := e.dc.Gateway(); st.Resumes < 1 {
		t.Errorf("the bot identified again (%d identifies) instead of resuming", st.Identifies)
	}
	if gw := e.bot.Gateway(); gw.Reconnects < 1 || !gw.Connected {
		t.Errorf("gateway state after reconnect = %+v", gw)
	}
}
