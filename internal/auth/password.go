package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id cost parameters. They are stored in every hash (PHC
// string format), so they can be raised later without invalidating existing
// hashes: a password is always verified with the parameters it was hashed
// with.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over the memory
	Threads uint8  // lanes; also the parallelism used to compute the hash
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultParams are the argon2id parameters of new password hashes: 64 MiB,
// 2 passes, 2 lanes, 16-byte salt, 32-byte key.
//
// RFC 9106 recommends t=3, m=64 MiB, p=4 as its second (memory-constrained)
// option and OWASP lists m=46 MiB, t=1, p=1 as a minimum. Measured on the
// 2-core development machine, m=64 MiB, t=2, p=2 takes about 60 ms per
// verification (t=3 about 120 ms), which keeps a login under the 100 ms
// budget while costing an attacker 64 MiB of memory per guess. Each
// concurrent verification holds 64 MiB, which is why the [Authenticator]
// bounds how many run at once.
var DefaultParams = Params{Memory: 64 * 1024, Time: 2, Threads: 2, SaltLen: 16, KeyLen: 32}

// Bounds accepted when parsing a stored hash. They keep a corrupt or hostile
// users file from making one verification take gigabytes or minutes.
const (
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxTime      = 16
	minSaltLen   = 8
	maxSaltLen   = 64
	minKeyLen    = 16
	maxKeyLen    = 64
)

// MaxPasswordLen is the longest password HashPassword accepts, in bytes. It
// matches the API's limit on LoginRequest.password.
const MaxPasswordLen = 256

// Errors of [HashPassword].
var (
	ErrEmptyPassword   = errors.New("auth: empty password")
	ErrPasswordTooLong = fmt.Errorf("auth: password longer than %d bytes", MaxPasswordLen)
)

// errBadHash is the cause of every hash parse error; the message says which
// part is wrong, never anything about a password.
var errBadHash = errors.New("not an argon2id PHC hash")

const hashPrefix = "$argon2id$v=19$"

var b64 = base64.RawStdEncoding.Strict()

// HashPassword hashes password with argon2id and [DefaultParams] and a fresh
// random salt, in PHC string format:
// $argon2id$v=19$m=65536,t=2,p=2$<salt>$<hash> (unpadded standard base64).
func HashPassword(password string) (string, error) {
	return HashPasswordParams(password, DefaultParams)
}

// HashPasswordParams is [HashPassword] with explicit parameters, for tests
// (which need cheap hashes) and for raising the cost later.
func HashPasswordParams(password string, p Params) (string, error) {
	switch {
	case password == "":
		return "", ErrEmptyPassword
	case len(password) > MaxPasswordLen:
		return "", ErrPasswordTooLong
	}
	if err := p.validate(); err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("auth: read random salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return encodeHash(p, salt, key), nil
}

// VerifyPassword reports whether password matches hash, a PHC string from
// [HashPassword]. The derived key is compared in constant time. A malformed
// hash never matches.
func VerifyPassword(hash, password string) bool {
	p, salt, key, err := parseHash(hash)
	if err != nil {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return subtle.ConstantTimeCompare(got, key) == 1
}

func encodeHash(p Params, salt, key []byte) string {
	return fmt.Sprintf("%sm=%d,t=%d,p=%d$%s$%s", hashPrefix, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// parseHash splits a PHC argon2id string into its parameters, salt and key.
// It accepts only the canonical form HashPassword writes (parameters in the
// order m, t, p; decimal without leading zeros; unpadded base64) so that
// every accepted hash has exactly one spelling.
func parseHash(s string) (Params, []byte, []byte, error) {
	rest, ok := strings.CutPrefix(s, hashPrefix)
	if !ok {
		return Params{}, nil, nil, fmt.Errorf("%w: want prefix %q", errBadHash, hashPrefix)
	}
	parts := strings.Split(rest, "$")
	if len(parts) != 3 {
		return Params{}, nil, nil, fmt.Errorf("%w: want $params$salt$hash after the version", errBadHash)
	}
	kv := strings.Split(parts[0], ",")
	if len(kv) != 3 {
		return Params{}, nil, nil, fmt.Errorf("%w: want parameters m=,t=,p=", errBadHash)
	}
	var vals [3]uint64
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(kv[i], name+"=")
		if !ok {
			return Params{}, nil, nil, fmt.Errorf("%w: want parameters m=,t=,p= in that order", errBadHash)
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || strconv.FormatUint(n, 10) != v {
			return Params{}, nil, nil, fmt.Errorf("%w: bad parameter %s", errBadHash, name)
		}
		vals[i] = n
	}
	salt, err := b64.DecodeString(parts[1])
	if err != nil {
		return Params{}, nil, nil, fmt.Errorf("%w: bad salt encoding", errBadHash)
	}
	key, err := b64.DecodeString(parts[2])
	if err != nil {
		return Params{}, nil, nil, fmt.Errorf("%w: bad hash encoding", errBadHash)
	}
	if vals[2] > 255 {
		return Params{}, nil, nil, fmt.Errorf("%w: parameter p out of range", errBadHash)
	}
	// The conversions cannot overflow: m and t were parsed as 32-bit, p is
	// at most 255 (checked above), and salt and key are cut from a file of
	// at most MaxUsersFileSize bytes.
	//nolint:gosec // G115: bounded as said above
	p := Params{
		Memory:  uint32(vals[0]),
		Time:    uint32(vals[1]),
		Threads: uint8(vals[2]),
		SaltLen: uint32(len(salt)),
		KeyLen:  uint32(len(key)),
	}
	if err := p.validate(); err != nil {
		return Params{}, nil, nil, fmt.Errorf("%w: %w", errBadHash, err)
	}
	return p, salt, key, nil
}

func (p Params) validate() error {
	switch {
	case p.Threads < 1:
		return errors.New("argon2id parallelism must be at least 1")
	case p.Memory < 8*uint32(p.Threads):
		return errors.New("argon2id memory must be at least 8 KiB per lane")
	case p.Memory > maxMemoryKiB:
		return fmt.Errorf("argon2id memory above %d KiB", maxMemoryKiB)
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("argon2id time must be within 1..%d", maxTime)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("argon2id salt must be %d..%d bytes", minSaltLen, maxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("argon2id key must be %d..%d bytes", minKeyLen, maxKeyLen)
	}
	return nil
}
