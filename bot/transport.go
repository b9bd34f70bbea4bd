package bot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"
	"golang.org/x/time/rate"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// rateLimitedError is what the transport returns when Discord rate limits a request marked
// withoutWaiting (the channel's webhook), so that the bridge can coalesce messages instead of
// waiting; classify turns it into core.RetryAfter. Everything else waits out 429s.
type rateLimitedError struct {
	retryAfter time.Duration
}

func (e *rateLimitedError) Error() string {
	return fmt.Sprintf("discord: rate limited, retry after %s", e.retryAfter)
}

type noWaitKey struct{}

// withoutWaiting marks a request whose 429 must come back as a *rateLimitedError.
func withoutWaiting(ctx context.Context) context.Context {
	return context.WithValue(ctx, noWaitKey{}, true)
}

// transport is the RoundTripper of the discordgo session: it points requests at
// DISCORD_API_URL, keeps the whole bot under a global request rate, and honours every 429
// (JSON or Cloudflare's HTML) by waiting and retrying, never by dropping the request.
type transport struct {
	base    http.RoundTripper
	target  *url.URL // nil: keep discord.com
	limiter *rate.Limiter
	// unlimited reports the requests outside the global limit: Discord does not count
	// interaction responses against it, and commands must answer within 3 s even while the
	// bridge relays a burst.
	unlimited func(path string) bool
	log       *slog.Logger
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the base transport.
func (t *transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx := r.Context()
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		b, err := io.ReadAll(r.Body)
		_ = r.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("reading request body: %w", err)
		}
		body = b
	}
	for {
		if t.unlimited == nil || !t.unlimited(r.URL.Path) {
			if err := t.limiter.Wait(ctx); err != nil {
				return nil, fmt.Errorf("waiting for the global rate limit: %w", err)
			}
		}
		req := r.Clone(ctx)
		if body != nil {
			req.Body = io.NopCloser(bytes.NewReader(body))
			req.ContentLength = int64(len(body))
		}
		if t.target != nil {
			req.URL.Scheme, req.URL.Host, req.Host = t.target.Scheme, t.target.Host, t.target.Host
		}
		resp, err := t.base.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusTooManyRequests {
			return resp, nil
		}
		wait, global := retryAfter(resp)
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		if v, _ := ctx.Value(noWaitKey{}).(bool); v && !global {
			return nil, &rateLimitedError{retryAfter: wait}
		}
		t.log.Warn("discord rate limit, waiting", "method", r.Method, "path", redact(r.URL.Path), "retry_after", wait, "global", global)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, fmt.Errorf("waiting out a discord rate limit: %w", ctx.Err())
		case <-timer.C:
		}
	}
}

// retryAfter reads the wait from Discord's JSON body, or from the headers when the body is not
// JSON (Cloudflare answers with HTML and a Retry-After header in seconds).
func retryAfter(resp *http.Response) (time.Duration, bool) {
	global := resp.Header.Get("X-RateLimit-Global") == "true"
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var j struct {
		RetryAfter *float64 `json:"retry_after"`
		Global     bool     `json:"global"`
	}
	if json.Unmarshal(b, &j) == nil && j.RetryAfter != nil {
		return secs(*j.RetryAfter), global || j.Global
	}
	for _, h := range []string{"Retry-After", "X-RateLimit-Reset-After"} {
		if f, err := strconv.ParseFloat(strings.TrimSpace(resp.Header.Get(h)), 64); err == nil {
			return secs(f), global
		}
	}
	return time.Second, global
}

func secs(f float64) time.Duration {
	d := time.Duration(f * float64(time.Second))
	if d < 0 {
		d = 0
	}
	if d > time.Hour {
		d = time.Hour
	}
	return d
}

// tokenInPath matches the secret part of webhook and interaction URLs.
var tokenInPath = regexp.MustCompile(`(/(?:webhooks|interactions)/\d+/)[^/?\s"']+`)

// redact removes webhook and interaction tokens from a string.
func redact(s string) string {
	return tokenInPath.ReplaceAllString(s, "${1}[redacted]")
}

// redactedError keeps the cause for errors.Is/As but prints without tokens.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// wrap adds what was being done and removes secrets from the text.
func wrap(op string, err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := redact(op + ": " + err.Error())
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	return &redactedError{msg: msg, err: err}
}

// restCode returns Discord's JSON error code and the HTTP status of a REST error; zeros when
// err is not one.
func restCode(err error) (code, status int) {
	var re *discordgo.RESTError
	if !errors.As(err, &re) {
		return 0, 0
	}
	if re.Response != nil {
		status = re.Response.StatusCode
	}
	if re.Message != nil {
		code = re.Message.Code
	}
	return code, status
}

// classify turns a failed REST call into core's delivery outcomes, so that the bridge knows
// what to do with the message: a webhook rate limit is core.RetryAfter with Discord's wait;
// refusals that retrying cannot fix (unknown channel or webhook, missing access, content
// refused: 400, 403, 404) are core.Permanent; server errors and network failures are
// core.Unavailable; anything else (and an error classified already) is returned as it is.
func classify(err error) error {
	if err == nil || core.IsPermanent(err) {
		return err
	}
	if _, ok := core.Wait(err); ok {
		return err
	}
	var rl *rateLimitedError
	if errors.As(err, &rl) {
		return core.RetryAfter(rl.retryAfter, err)
	}
	switch _, status := restCode(err); {
	case status == http.StatusBadRequest, status == http.StatusForbidden, status == http.StatusNotFound:
		return core.Permanent(err)
	case status >= 500:
		return core.Unavailable(err)
	case status != 0:
		return err
	}
	var ue *url.Error
	var ne net.Error
	if errors.As(err, &ue) || errors.As(err, &ne) {
		return core.Unavailable(err)
	}
	return err
}
