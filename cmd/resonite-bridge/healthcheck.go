package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/joho/godotenv"
)

const healthcheckTimeout = 5 * time.Second

// runHealthcheck GETs /healthz of a running daemon. It exists because the distroless image has
// no shell or curl for a container HEALTHCHECK.
func runHealthcheck(ctx context.Context, args []string, env map[string]string, envFile string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("resonite-bridge healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("url", "", "URL to GET (default: http://127.0.0.1:<port of HTTP_ADDR>/healthz)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "healthcheck: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return exitUsage
	}
	u := *target
	if u == "" {
		var err error
		if u, err = healthURL(env, envFile); err != nil {
			fmt.Fprintf(stderr, "healthcheck: %v\n", err)
			return exitUsage
		}
	}

	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()
	// A transport of our own, closed on return: nothing lingers after the check.
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return exitUsage
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return exitFailure
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "healthcheck: %s answered %s: %s\n", u, resp.Status, strings.TrimSpace(string(body)))
		return exitFailure
	}
	fmt.Fprintf(stdout, "healthy: %s\n", strings.TrimSpace(string(body)))
	return exitOK
}

// healthURL derives the local /healthz URL from HTTP_ADDR (environment first, then .env), so
// the check follows the daemon's own setting; a wildcard host becomes loopback.
func healthURL(env map[string]string, envFile string) (string, error) {
	addr, ok := env["HTTP_ADDR"]
	if !ok && envFile != "" {
		if vals, err := godotenv.Read(envFile); err == nil {
			addr = vals["HTTP_ADDR"]
		}
	}
	addr = strings.TrimSpace(addr)
	if addr == "" {
		addr = defaultHTTPAddr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("HTTP_ADDR: must be host:port, got %q", addr)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}
