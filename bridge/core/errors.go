package core

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrNotFound is returned (wrapped or not) by lookups of rows that do not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict is returned when a row already exists (a channel already paired) or is in a
	// state that forbids the change (a delivered message).
	ErrConflict = errors.New("conflict")
	// ErrFull is returned when a row would exceed a limit (an 11th contact in a channel).
	ErrFull = errors.New("limit reached")
)

// Delivery outcomes. An adapter wraps a failed send in one of these so that the bridge, which
// knows neither wire protocol, can tell what to do with the message: give it up, wait without
// spending an attempt, or retry with backoff (any other error).

// PermanentError is a refusal that retrying cannot fix (contact removed, content refused).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as one that retrying cannot fix; nil stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// RetryAfterError is a rate limit: the same request succeeds after the wait.
type RetryAfterError struct {
	After time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%v (retry after %s)", e.Err, e.After)
}
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter marks err as a rate limit lifted after d; nil stays nil.
func RetryAfter(d time.Duration, err error) error {
	if err == nil {
		return nil
	}
	return &RetryAfterError{After: d, Err: err}
}

// UnavailableError means the other side cannot be reached now (hub not connected, a server
// error, the network): not the message's fault, so it waits without spending an attempt.
type UnavailableError struct{ Err error }

func (e *UnavailableError) Error() string { return e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }

// Unavailable marks err as an outage of the other side; nil stays nil.
func Unavailable(err error) error {
	if err == nil {
		return nil
	}
	return &UnavailableError{Err: err}
}

// IsPermanent reports whether err, or an error it wraps, is a PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// OutageWait is how long a delivery waits when the other side is unavailable.
const OutageWait = 5 * time.Second

// Wait reports how long to wait before trying again without counting an attempt: the rate
// limit's own delay, or OutageWait for an outage; false for any other error.
func Wait(err error) (time.Duration, bool) {
	var r *RetryAfterError
	if errors.As(err, &r) {
		return max(r.After, 0), true
	}
	var u *UnavailableError
	if errors.As(err, &u) {
		return OutageWait, true
	}
	return 0, false
}
