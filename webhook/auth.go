package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/drover-sre/drover/recipe"
)

// SignatureHeader carries the HMAC of a request body: "sha256=" followed by
// the hex of HMAC-SHA256(secret, body).
const SignatureHeader = "X-Drover-Signature"

// MinSecretLen is the shortest bearer token or HMAC secret NewAuth accepts,
// in bytes.
const MinSecretLen = 16

// Auth checks that a request comes from a sender that knows the recipe's
// webhook secrets. It holds the resolved secrets and never prints them.
type Auth struct {
	tokenSum [sha256.Size]byte // SHA-256 of the bearer token; zero when none
	hasToken bool
	hmacKey  []byte // nil when no HMAC secret is configured
}

// NewAuth resolves the secrets of a recipe's alerts.auth. It fails when
// neither is set (the webhook never runs unauthenticated), when a secret
// cannot be read, or when one is shorter than MinSecretLen; errors name the
// field and the reference, never the value.
func NewAuth(a recipe.AlertAuth) (*Auth, error) {
	if a.BearerToken == "" && a.HMACSecret == "" {
		return nil, errors.New("alerts.auth: set bearer_token or hmac_secret: the webhook never runs unauthenticated")
	}
	var au Auth
	if a.BearerToken != "" {
		tok, err := resolve("alerts.auth.bearer_token", a.BearerToken)
		if err != nil {
			return nil, err
		}
		au.tokenSum, au.hasToken = sha256.Sum256([]byte(tok)), true
	}
	if a.HMACSecret != "" {
		key, err := resolve("alerts.auth.hmac_secret", a.HMACSecret)
		if err != nil {
			return nil, err
		}
		au.hmacKey = []byte(key)
	}
	return &au, nil
}

func resolve(path string, ref recipe.SecretRef) (string, error) {
	v, err := ref.Resolve()
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if len(v) < MinSecretLen {
		return "", fmt.Errorf("%s: %s is %d bytes long; use at least %d (e.g. openssl rand -hex 32)", path, ref, len(v), MinSecretLen)
	}
	return v, nil
}

// Bearer reports whether requests must carry a bearer token.
func (a *Auth) Bearer() bool { return a.hasToken }

// CheckHeader checks the bearer token, if one is configured, before the
// body is read: "Authorization: Bearer <token>". The comparison takes the
// same time whatever the token sent.
func (a *Auth) CheckHeader(r *http.Request) error {
	if !a.hasToken {
		return nil
	}
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return errors.New("Authorization: missing bearer token")
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	if subtle.ConstantTimeCompare(sum[:], a.tokenSum[:]) != 1 {
		return errors.New("Authorization: wrong bearer token")
	}
	return nil
}

// CheckBody checks the body's signature, if an HMAC secret is configured:
// SignatureHeader must be "sha256=<hex of HMAC-SHA256(secret, body)>".
func (a *Auth) CheckBody(r *http.Request, body []byte) error {
	if a.hmacKey == nil {
		return nil
	}
	v := r.Header.Get(SignatureHeader)
	if v == "" {
		return errors.New(SignatureHeader + ": missing")
	}
	hexSum, ok := strings.CutPrefix(v, "sha256=")
	got, err := hex.DecodeString(hexSum)
	if !ok || err != nil || len(got) != sha256.Size {
		return errors.New(SignatureHeader + ": must be sha256=<64 hex digits>")
	}
	if !hmac.Equal(got, Sign(a.hmacKey, body)) {
		return errors.New(SignatureHeader + ": does not match the body")
	}
	return nil
}

// Sign returns HMAC-SHA256(key, body), the signature CheckBody expects (hex
// encoded, after "sha256=").
func Sign(key, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return m.Sum(nil)
}
