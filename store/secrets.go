package store

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Secrets at rest (webhook tokens, the Resonite session token) are sealed with AES-256-GCM
// under a key derived from BRIDGE_SECRET_KEY when one is set, and kept plain otherwise. A sealed
// value is text: sealedPrefix, then base64 of nonce and ciphertext.
const sealedPrefix = "enc1:"

// keyCheckText is sealed into secret_key_check, so that a start with another key is refused
// instead of failing later on every token.
const keyCheckText = "resonite-bridge secret key check"

// What a sealed value is for, as GCM's additional data: a token copied into another column
// does not open there.
const (
	aadWebhookToken = "pairings.webhook_token"
	aadSessionToken = "resonite_account.token"
	aadKeyCheck     = "secret_key_check"
)

// ErrSecretKey is matched (errors.Is) by UseSecretKey's refusals: a key that is not the one the
// database was sealed with, or none for a sealed database.
var ErrSecretKey = errors.New("secret key mismatch")

type sealer struct{ aead cipher.AEAD }

func newSealer(secret string) (*sealer, error) {
	key, err := hkdf.Key(sha256.New, []byte(secret), nil, "resonite-bridge secrets at rest v1", 32)
	if err != nil {
		return nil, fmt.Errorf("deriving the key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("making the cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("making the cipher: %w", err)
	}
	return &sealer{aead: aead}, nil
}

func (s *sealer) seal(plain, aad string) (string, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("making a nonce: %w", err)
	}
	out := s.aead.Seal(nonce, nonce, []byte(plain), []byte(aad))
	return sealedPrefix + base64.StdEncoding.EncodeToString(out), nil
}

func (s *sealer) open(sealed, aad string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sealed, sealedPrefix))
	if err != nil || len(raw) < s.aead.NonceSize() {
		return "", errors.New("sealed value is malformed")
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], []byte(aad))
	if err != nil {
		return "", fmt.Errorf("opening a sealed value: %w", ErrSecretKey)
	}
	return string(plain), nil
}

// sealSecret seals v when a key is in use; "" stays "" (no secret to hide).
func (s *Store) sealSecret(v, aad string) (string, error) {
	k := s.secrets.Load()
	if k == nil || v == "" {
		return v, nil
	}
	return k.seal(v, aad)
}

// openSecret reads a stored secret: plain values as they are, sealed ones with the key.
func (s *Store) openSecret(v, aad string) (string, error) {
	if !strings.HasPrefix(v, sealedPrefix) {
		return v, nil
	}
	k := s.secrets.Load()
	if k == nil {
		return "", fmt.Errorf("a stored secret is encrypted and BRIDGE_SECRET_KEY is not set: %w", ErrSecretKey)
	}
	return k.open(v, aad)
}

// UseSecretKey makes the store seal secrets with a key derived from secret (empty: plain).
// Call it once at start, before the store is used, by one instance (under the instance lock):
//   - with a key, on a database without one it seals the plain secrets already stored; on a
//     database sealed with another key it fails with ErrSecretKey;
//   - without a key, a sealed database fails with ErrSecretKey (the tokens cannot be read).
//
// The error names BRIDGE_SECRET_KEY and never the key.
func (s *Store) UseSecretKey(ctx context.Context, secret string) error {
	var check string
	err := s.pool.QueryRow(ctx, `select sealed from secret_key_check`).Scan(&check)
	sealedDB := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("store: reading the secret key check: %w", err)
	}
	if secret == "" {
		if sealedDB {
			return fmt.Errorf("store: the database's tokens are encrypted: set BRIDGE_SECRET_KEY to the key they were encrypted with: %w", ErrSecretKey)
		}
		return nil
	}
	k, err := newSealer(secret)
	if err != nil {
		return fmt.Errorf("store: BRIDGE_SECRET_KEY: %w", err)
	}
	if sealedDB {
		if got, err := k.open(check, aadKeyCheck); err != nil || got != keyCheckText {
			return fmt.Errorf("store: BRIDGE_SECRET_KEY is not the key this database's tokens were encrypted with: %w", ErrSecretKey)
		}
		s.secrets.Store(k)
		return nil
	}
	// First start with a key: seal what is stored, and the check, in one transaction.
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `select id, webhook_token from pairings where webhook_token <> '' and webhook_token not like 'enc1:%' for update`)
		type tok struct {
			id int64
			v  string
		}
		toks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (tok, error) {
			var t tok
			return t, r.Scan(&t.id, &t.v)
		})
		if err != nil {
			return fmt.Errorf("reading webhook tokens: %w", err)
		}
		for _, t := range toks {
			sealed, err := k.seal(t.v, aadWebhookToken)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `update pairings set webhook_token = $2 where id = $1`, t.id, sealed); err != nil {
				return fmt.Errorf("sealing a webhook token: %w", err)
			}
		}
		var token string
		err = tx.QueryRow(ctx, `select token from resonite_account for update`).Scan(&token)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("reading the session token: %w", err)
		}
		if token != "" && !strings.HasPrefix(token, sealedPrefix) {
			sealed, err := k.seal(token, aadSessionToken)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `update resonite_account set token = $1`, sealed); err != nil {
				return fmt.Errorf("sealing the session token: %w", err)
			}
		}
		sealedCheck, err := k.seal(keyCheckText, aadKeyCheck)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `insert into secret_key_check (sealed) values ($1)`, sealedCheck); err != nil {
			return fmt.Errorf("storing the key check: %w", err)
		}
		return nil
	})
	if isUniqueViolation(err) {
		// Another instance sealed them at the same moment: check its key as on a later start.
		return s.UseSecretKey(ctx, secret)
	}
	if err != nil {
		return fmt.Errorf("store: encrypting the stored tokens with BRIDGE_SECRET_KEY: %w", err)
	}
	s.secrets.Store(k)
	return nil
}
