package resonite

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Sentinel errors. errors.Is matches them against an *APIError whose status means that thing,
// so callers never need to look at status codes.
var (
	// ErrNotFound: the user, session or other resource does not exist (404).
	ErrNotFound = errors.New("resonite: not found")
	// ErrUnauthorized: the token was refused (401/403 on an authenticated call) or there are no
	// credentials to log in with.
	ErrUnauthorized = errors.New("resonite: not authorized (token refused or no credentials)")
	// ErrTOTPRequired: the account has 2FA and the login carried no valid code.
	ErrTOTPRequired = errors.New("resonite: login needs a 2FA (TOTP) code: set a TOTP secret or a fresh code")
	// ErrBadCredentials: the cloud refused the username or password.
	ErrBadCredentials = errors.New("resonite: invalid username or password")
	// ErrRateLimited: the cloud answered 429 more often than the client retries, or asked to
	// wait longer than the context allows.
	ErrRateLimited = errors.New("resonite: rate limited")
)

// APIError is a non-2xx answer of the REST API.
type APIError struct {
	Method string
	// Path is the request path without query; the token of a logout path is replaced by
	// "[redacted]".
	Path   string
	Status int
	// Body is an excerpt of the answer (at most 200 bytes) with any known secret removed.
	Body string
	// RetryAfter is the wait the cloud asked for on a 429 (capped), zero otherwise.
	RetryAfter time.Duration

	login bool // the request was POST /userSessions: 400/403 mean credentials, not token
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "resonite: %s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	switch {
	case e.isTOTP():
		b.WriteString(": a 2FA code is needed")
	case e.isBadCredentials():
		b.WriteString(": invalid credentials")
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	if e.Body != "" && !e.isTOTP() {
		fmt.Fprintf(&b, ": %q", e.Body)
	}
	return b.String()
}

func (e *APIError) isTOTP() bool {
	return e.login && e.Status == http.StatusForbidden && strings.TrimSpace(e.Body) == "TOTP"
}

func (e *APIError) isBadCredentials() bool {
	return e.login && (e.Status == http.StatusBadRequest ||
		e.Status == http.StatusUnauthorized ||
		(e.Status == http.StatusForbidden && !e.isTOTP()))
}

func (e *APIError) isUnauthorized() bool {
	return !e.login && (e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden)
}

// Is lets errors.Is(err, ErrNotFound) and the other sentinels work on API errors.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrUnauthorized:
		return e.isUnauthorized()
	case ErrTOTPRequired:
		return e.isTOTP()
	case ErrBadCredentials:
		return e.isBadCredentials()
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	}
	return false
}

// redactor removes known secrets from text that may end up in an error or a log.
type redactor []string

func (r redactor) clean(s string) string {
	for _, secret := range r {
		if len(secret) >= 4 { // shorter values would mangle ordinary text and hide nothing
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}

// bodyExcerpt makes the APIError.Body: secrets out first, then at most 200 bytes.
func bodyExcerpt(body []byte, r redactor) string {
	s := strings.TrimSpace(strings.ToValidUTF8(string(body), "�"))
	return excerpt(r.clean(s), 197) // excerpt may add a 3-byte ellipsis
}
