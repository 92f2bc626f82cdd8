package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ---- API tokens

const apiTokenCols = "name, hash, scopes, selector, created_by, created_at, expires_at, revoked_at, revoked_by"

func checkAPIToken(t APIToken) error {
	if t.Name == "" || len(t.Name) > MaxTokenName {
		return fmt.Errorf("%w: token name must be 1-%d characters", ErrInvalid, MaxTokenName)
	}
	if len(t.Hash) != TokenHashSize {
		return fmt.Errorf("%w: token hash must be %d bytes", ErrInvalid, TokenHashSize)
	}
	if len(t.Scopes) == 0 {
		return fmt.Errorf("%w: token without scopes", ErrInvalid)
	}
	for _, sc := range t.Scopes {
		if sc == "" || strings.ContainsAny(sc, ", ") {
			return fmt.Errorf("%w: scope %q", ErrInvalid, sc)
		}
	}
	return checkLens("created_by", t.CreatedBy, maxTextLen)
}

func (s *sqlStore) CreateAPIToken(ctx context.Context, t APIToken) (APIToken, error) {
	defer s.observe("create_api_token")()
	op := "create API token " + t.Name
	if err := checkAPIToken(t); err != nil {
		return APIToken{}, s.fail(op, err)
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.now()
	}
	t.CreatedAt, t.ExpiresAt = utc(t.CreatedAt), utc(t.ExpiresAt)
	t.RevokedAt, t.RevokedBy = time.Time{}, ""
	_, err := s.w.ExecContext(ctx, "INSERT INTO api_tokens ("+apiTokenCols+") VALUES (?, ?, ?, ?, ?, ?, ?, NULL, '')",
		t.Name, t.Hash, strings.Join(t.Scopes, ","), t.Selector, t.CreatedBy, s.d.timeArg(t.CreatedAt), s.d.timeArg(t.ExpiresAt))
	if err != nil {
		return APIToken{}, s.fail(op, err)
	}
	return t, nil
}

func (s *sqlStore) GetAPIToken(ctx context.Context, name string) (APIToken, error) {
	defer s.observe("get_api_token")()
	return s.oneAPIToken(ctx, "get API token "+name, "name = ?", name)
}

func (s *sqlStore) APITokenByHash(ctx context.Context, hash []byte) (APIToken, error) {
	defer s.observe("api_token_by_hash")()
	return s.oneAPIToken(ctx, "find API token", "hash = ?", hash)
}

func (s *sqlStore) oneAPIToken(ctx context.Context, op, cond string, arg any) (APIToken, error) {
	t, err := scanAPIToken(s.r.QueryRowContext(ctx, "SELECT "+apiTokenCols+" FROM api_tokens WHERE "+cond, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return APIToken{}, s.fail(op, ErrNotFound)
	}
	if err != nil {
		return APIToken{}, s.fail(op, err)
	}
	return t, nil
}

func (s *sqlStore) ListAPITokens(ctx context.Context, p Paging) ([]APIToken, int, error) {
	defer s.observe("list_api_tokens")()
	out, total, err := listPage(ctx, s, p, apiTokenCols, "api_tokens", "", "name", nil, scanAPIToken)
	if err != nil {
		return nil, 0, s.fail("list API tokens", err)
	}
	return out, total, nil
}

func (s *sqlStore) RevokeAPIToken(ctx context.Context, name string, at time.Time, by string) (APIToken, error) {
	defer s.observe("revoke_api_token")()
	op := "revoke API token " + name
	if err := checkLens("revoked_by", by, maxTextLen); err != nil {
		return APIToken{}, s.fail(op, err)
	}
	if at.IsZero() {
		at = s.now()
	}
	var t APIToken
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE api_tokens SET revoked_at = ?, revoked_by = ? WHERE name = ? AND revoked_at IS NULL",
			s.d.timeArg(utc(at)), by, name)
		if err != nil {
			return err
		}
		if _, err := res.RowsAffected(); err != nil {
			return err
		}
		t, err = scanAPIToken(tx.QueryRowContext(ctx, "SELECT "+apiTokenCols+" FROM api_tokens WHERE name = ?", name))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		return err
	})
	if err != nil {
		return APIToken{}, s.fail(op, err)
	}
	return t, nil
}

func scanAPIToken(sc scanner) (APIToken, error) {
	var t APIToken
	var scopes string
	if err := sc.Scan(&t.Name, &t.Hash, &scopes, &t.Selector, &t.CreatedBy, dbTime{&t.CreatedAt}, dbTime{&t.ExpiresAt}, dbTime{&t.RevokedAt}, &t.RevokedBy); err != nil {
		return t, err
	}
	t.Scopes = strings.Split(scopes, ",")
	return t, nil
}
