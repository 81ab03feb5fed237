package recipe

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"strings"
)

// SecretRef points at a secret without holding it: "env:NAME" names an
// environment variable, "file:/absolute/path" a file. Recipes may only hold
// references; Validate rejects a literal value without ever repeating it.
type SecretRef string

const (
	envPrefix  = "env:"
	filePrefix = "file:"

	// maxSecretSize bounds how much of a secret file Resolve reads.
	maxSecretSize = 64 << 10
)

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Messages of SecretRef.Validate. None of them includes the reference.
var (
	errSecretEmpty   = errors.New("secret reference is empty")
	errSecretLiteral = errors.New("must be a secret reference (env:NAME or file:/absolute/path), not a literal value")
	errSecretEnv     = errors.New("env reference must name a variable matching [A-Za-z_][A-Za-z0-9_]*")
	errSecretFile    = errors.New("file reference must be a clean absolute path")
)

// Validate checks the syntax of r only; it never reads the secret. The error,
// if any, never contains r itself, so it is safe to show even when r is a
// password typed in by mistake.
func (r SecretRef) Validate() error {
	s := string(r)
	switch {
	case s == "":
		return errSecretEmpty
	case strings.HasPrefix(s, envPrefix):
		if !envNameRE.MatchString(s[len(envPrefix):]) {
			return errSecretEnv
		}
	case strings.HasPrefix(s, filePrefix):
		p := s[len(filePrefix):]
		if !path.IsAbs(p) || path.Clean(p) != p || strings.ContainsRune(p, 0) {
			return errSecretFile
		}
	default:
		return errSecretLiteral
	}
	return nil
}

// String returns r when it is a well-formed reference and "<invalid secret
// reference>" otherwise, so printing a SecretRef with %s or %v never shows a
// literal secret.
func (r SecretRef) String() string {
	if r.Validate() != nil {
		return "<invalid secret reference>"
	}
	return string(r)
}

// Resolve reads the secret r points at: the environment variable's value or
// the file's content, with one trailing newline ("\n" or "\r\n") removed.
// A missing or empty secret is an error. Errors name the reference (never
// the value), or only the problem when r is not a valid reference.
func (r SecretRef) Resolve() (string, error) {
	if err := r.Validate(); err != nil {
		return "", fmt.Errorf("resolve secret: %w", err)
	}
	s := string(r)
	var v string
	if name, ok := strings.CutPrefix(s, envPrefix); ok {
		val, set := os.LookupEnv(name)
		if !set {
			return "", fmt.Errorf("resolve %s: environment variable is not set", s)
		}
		v = val
	} else {
		b, err := readSecretFile(strings.TrimPrefix(s, filePrefix))
		if err != nil {
			return "", fmt.Errorf("resolve %s: %w", s, err)
		}
		v = string(b)
	}
	if t, ok := strings.CutSuffix(v, "\r\n"); ok {
		v = t
	} else {
		v = strings.TrimSuffix(v, "\n")
	}
	if v == "" {
		return "", fmt.Errorf("resolve %s: secret is empty", s)
	}
	return v, nil
}

// readSecretFile reads at most maxSecretSize bytes of the file at p.
func readSecretFile(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSecretSize {
		return nil, fmt.Errorf("file is larger than %d KiB", maxSecretSize>>10)
	}
	return b, nil
}
