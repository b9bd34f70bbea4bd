// Command resonite-bridge bridges Discord channels and Resonite contacts. Run it with -h for
// the subcommands and every environment variable.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=..."; otherwise the module
// version from the build info is used.
var version string

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // runtime failure
	exitUsage   = 2 // bad arguments or configuration
)

func main() {
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(args, environ []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, restore default handling so a second one kills at once.
	context.AfterFunc(ctx, stop)
	return runWith(ctx, args, environ, stdout, stderr, productionHooks())
}

// runWith parses args and runs the requested command with the given hooks.
func runWith(ctx context.Context, args, environ []string, stdout, stderr io.Writer, h hooks) int {
	fs := flag.NewFlagSet("resonite-bridge", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // usage is printed by us, to the right stream
	envFile := fs.String("env-file", ".env", "read variables from this `file` when it exists")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			writeUsage(stdout, fs)
			return exitOK
		}
		fmt.Fprintf(stderr, "resonite-bridge: %v\n\n", err)
		writeUsage(stderr, fs)
		return exitUsage
	}
	if *showVersion {
		fmt.Fprintf(stdout, "resonite-bridge %s\n", buildVersion())
		return exitOK
	}

	cmd, rest := "", fs.Args()
	if len(rest) > 0 {
		cmd, rest = rest[0], rest[1:]
	}
	env := environMap(environ)
	switch cmd {
	case "":
		if len(rest) > 0 {
			break
		}
		return runDaemonCmd(ctx, env, *envFile, stderr, h)
	case "migrate":
		if len(rest) == 1 && isHelpArg(rest[0]) {
			writeUsage(stdout, fs)
			return exitOK
		}
		if len(rest) > 0 {
			break
		}
		return runMigrateCmd(ctx, env, *envFile, stdout, stderr, h)
	case "healthcheck":
		return runHealthcheck(ctx, rest, env, *envFile, stdout, stderr)
	case "help":
		writeUsage(stdout, fs)
		return exitOK
	}
	fmt.Fprintf(stderr, "resonite-bridge: unexpected arguments: %s\n\n", strings.Join(fs.Args(), " "))
	writeUsage(stderr, fs)
	return exitUsage
}

func isHelpArg(s string) bool {
	return s == "-h" || s == "-help" || s == "--help"
}

func runDaemonCmd(ctx context.Context, env map[string]string, envFile string, stderr io.Writer, h hooks) int {
	cfg, err := loadConfig(env, envFile, modeDaemon)
	if err != nil {
		writeConfigError(stderr, err)
		return exitUsage
	}
	log := newLogger(stderr, cfg)
	log.Info("starting", "version", buildVersion(), "config", cfg)
	if err := runDaemon(ctx, cfg, log, newMetrics(buildVersion()), h); err != nil {
		log.Error("exiting", "err", err)
		return exitFailure
	}
	return exitOK
}

func runMigrateCmd(ctx context.Context, env map[string]string, envFile string, stdout, stderr io.Writer, h hooks) int {
	cfg, err := loadConfig(env, envFile, modeMigrate)
	if err != nil {
		writeConfigError(stderr, err)
		return exitUsage
	}
	log := newLogger(stderr, cfg)
	db, err := openAndMigrate(ctx, cfg, log, h)
	if err != nil {
		log.Error("migration failed", "err", err)
		return exitFailure
	}
	db.Close()
	return exitOK
}

func writeConfigError(w io.Writer, err error) {
	var ce *ConfigError
	if errors.As(err, &ce) {
		fmt.Fprintln(w, "resonite-bridge: invalid configuration:")
		for _, p := range ce.Problems {
			fmt.Fprintln(w, "  "+p)
		}
		fmt.Fprintln(w, "Run resonite-bridge -h for every variable.")
		return
	}
	fmt.Fprintf(w, "resonite-bridge: %v\n", err)
}

// newLogger builds the structured logger LOG_FORMAT and LOG_LEVEL ask for.
func newLogger(w io.Writer, cfg *Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func writeUsage(w io.Writer, fs *flag.FlagSet) {
	var b strings.Builder
	b.WriteString(`resonite-bridge relays chat between Discord channels and Resonite contacts.

Usage:
  resonite-bridge [flags]              run the daemon until SIGINT or SIGTERM
  resonite-bridge [flags] migrate      apply database migrations, then exit
  resonite-bridge [flags] healthcheck [-url URL]
                                       GET /healthz of the running daemon (default: derived
                                       from HTTP_ADDR); exit 0 when healthy, 1 otherwise

Flags:
`)
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(&b, "  -%s", f.Name)
		if name != "" {
			b.WriteString(" " + name)
		}
		fmt.Fprintf(&b, "\n        %s", usage)
		if f.DefValue != "" && f.DefValue != "false" {
			fmt.Fprintf(&b, " (default %q)", f.DefValue)
		}
		b.WriteString("\n")
	})
	b.WriteString("  -h, --help\n        print this help and exit\n")
	b.WriteString(`
Environment (a .env file is read when present; the real environment wins):
`)
	for _, v := range envVars {
		fmt.Fprintf(&b, "  %s\n        %s\n        default: %s\n", v.Name, v.Help, v.Default)
	}
	b.WriteString(`
Secrets (tokens, passwords, TOTP values, the database password) never appear in logs.

Exit status: 0 after a clean stop, 1 on a runtime failure, 2 on bad arguments or configuration
(every problem is printed, one line each, naming the variable).
`)
	_, _ = io.WriteString(w, b.String())
}
