package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"
)

// Account is the bridge's Resonite account state. The password is never stored.
type Account struct {
	UserID          string
	Token           string // secret: never log it
	Expire          time.Time
	SecretMachineID string // sent at login; stable per installation
	UID             string // the UID header; stable per installation
}

// LogValue keeps the session token and machine id out of logs.
func (a Account) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("user_id", a.UserID),
		slog.Bool("has_token", a.Token != ""),
		slog.Time("expire", a.Expire),
	)
}

// Account returns the account state, creating the single row on first use
// and generating a random SecretMachineID and UID when they are empty. The
// generated values are stored, so they stay the same across restarts.
func (s *Store) Account(ctx context.Context) (Account, error) {
	machineID, uid, err := newIdentity()
	if err != nil {
		return Account{}, fmt.Errorf("store: read account: %w", err)
	}
	// One statement so that two processes starting together agree on one identity.
	var a Account
	var expire *time.Time
	err = s.pool.QueryRow(ctx, `insert into resonite_account (singleton, secret_machine_id, uid) values (true, $1, $2)
		on conflict (singleton) do update set
			secret_machine_id = case when resonite_account.secret_machine_id = '' then excluded.secret_machine_id else resonite_account.secret_machine_id end,
			uid = case when resonite_account.uid = '' then excluded.uid else resonite_account.uid end
		returning user_id, token, expire, secret_machine_id, uid`, machineID, uid).
		Scan(&a.UserID, &a.Token, &expire, &a.SecretMachineID, &a.UID)
	if err != nil {
		return Account{}, fmt.Errorf("store: read account: %w", err)
	}
	if expire != nil {
		a.Expire = *expire
	}
	if a.Token, err = s.openSecret(a.Token, aadSessionToken); err != nil {
		return Account{}, fmt.Errorf("store: read account: %w", err)
	}
	return a, nil
}

// newIdentity makes a secretMachineId (128 URL-safe characters, as the
// official client uses) and a UID (64 hex digits, shaped like the SHA-256 the
// official client sends).
func newIdentity() (machineID, uid string, err error) {
	b := make([]byte, 96+32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("generate identity: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:96]), hex.EncodeToString(b[96:]), nil
}

// SetAccountIdentity stores configured identity values, which win over
// generated ones. An empty argument keeps the stored (or generated) value.
func (s *Store) SetAccountIdentity(ctx context.Context, secretMachineID, uid string) error {
	if _, err := s.Account(ctx); err != nil { // make sure the row exists
		return fmt.Errorf("store: set account identity: %w", err)
	}
	_, err := s.pool.Exec(ctx, `update resonite_account set
		secret_machine_id = coalesce(nullif($1, ''), secret_machine_id),
		uid = coalesce(nullif($2, ''), uid), updated_at = now()`, secretMachineID, uid)
	if err != nil {
		return fmt.Errorf("store: set account identity: %w", err)
	}
	return nil
}

// SaveAccountSession stores the logged-in session so a restart can reuse it.
func (s *Store) SaveAccountSession(ctx context.Context, userID, token string, expire time.Time) error {
	if _, err := s.Account(ctx); err != nil {
		return fmt.Errorf("store: save account session: %w", err)
	}
	sealed, err := s.sealSecret(token, aadSessionToken)
	if err != nil {
		return fmt.Errorf("store: save account session: %w", err)
	}
	_, err = s.pool.Exec(ctx, `update resonite_account set user_id = $1, token = $2, expire = $3, updated_at = now()`,
		userID, sealed, expire)
	if err != nil {
		return fmt.Errorf("store: save account session: %w", err)
	}
	return nil
}

// ClearAccountSession forgets the session (logout, token rejected). The
// identity stays.
func (s *Store) ClearAccountSession(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, `update resonite_account set user_id = '', token = '', expire = null, updated_at = now()`)
	if err != nil {
		return fmt.Errorf("store: clear account session: %w", err)
	}
	return nil
}

// AccountSession returns the stored session; ok is false when there is none.
// It does not judge expiry: the caller compares expire with its clock. This
// (with SaveAccountSession and ClearAccountSession) is the session
// persistence the Resonite client needs, without store importing resonite.
func (s *Store) AccountSession(ctx context.Context) (userID, token string, expire time.Time, ok bool, err error) {
	a, err := s.Account(ctx)
	if err != nil {
		return "", "", time.Time{}, false, fmt.Errorf("store: read account session: %w", err)
	}
	if a.Token == "" {
		return "", "", time.Time{}, false, nil
	}
	return a.UserID, a.Token, a.Expire, true, nil
}
