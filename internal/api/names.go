package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// MaxNameLen bounds module names, versions and tenants.
const MaxNameLen = 128

// ErrInvalidName is wrapped by CheckName's errors.
var ErrInvalidName = errors.New("invalid name")

// reservedNames would collide with routes (/v1/modules/by-digest/...).
var reservedNames = map[string]bool{"by-digest": true}

// CheckName checks a module name, version or tenant (what says which:
// "name", "version", "tenant"). They are used as folder and file names by
// the registry and as path segments of URLs, so only letters, digits,
// '_', '-' and '.' are allowed, starting with a letter or digit, never
// "..".
func CheckName(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty %s", ErrInvalidName, what)
	case len(s) > MaxNameLen:
		return fmt.Errorf("%w: %s of %d bytes, more than %d", ErrInvalidName, what, len(s), MaxNameLen)
	case strings.Contains(s, ".."):
		return fmt.Errorf("%w: %s %q holds \"..\"", ErrInvalidName, what, s)
	case what == "name" && reservedNames[s]:
		return fmt.Errorf("%w: %s %q is reserved", ErrInvalidName, what, s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '-' && c != '.') {
			return fmt.Errorf("%w: %s %q: only letters, digits, '_', '-' and '.' are allowed, starting with a letter or digit", ErrInvalidName, what, s)
		}
	}
	return nil
}

// IsModuleRef reports whether a job spec's module value names a registry
// module, name@version, rather than a local path: it holds an '@' and no
// path separator. (A local file whose name holds '@' is written ./a@b.wasm.)
func IsModuleRef(s string) bool {
	return strings.Contains(s, "@") && !strings.ContainsAny(s, `/\`)
}

// ParseModuleRef splits name@version and checks both parts.
func ParseModuleRef(s string) (name, version string, err error) {
	name, version, ok := strings.Cut(s, "@")
	if !ok {
		return "", "", fmt.Errorf("%w: %q is not name@version", ErrInvalidName, s)
	}
	if err := CheckName("name", name); err != nil {
		return "", "", err
	}
	if err := CheckName("version", version); err != nil {
		return "", "", err
	}
	return name, version, nil
}

// NewRequestID makes up a savepoint request id, "sp-" and 16 random hex
// digits: what the coordinator answers a request that named none, and what
// the CLI sends so that it can retry safely.
func NewRequestID() string {
	var b [8]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather)
	return "sp-" + hex.EncodeToString(b[:])
}
