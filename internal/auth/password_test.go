package auth_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/remitpay/remit/internal/auth"
)

var phcRE = regexp.MustCompile(`^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$`)

func TestHashAndVerify(t *testing.T) {
	h := mustHash(t, "correct horse")
	if !phcRE.MatchString(h) {
		t.Fatalf("hash %q is not a PHC argon2id string", h)
	}
	if h2 := mustHash(t, "correct horse"); h2 == h {
		t.Error("two hashes of one password are equal: salt not random")
	}
	tests := []struct {
		name     string
		hash     string
		password string
		want     bool
	}{
		{"right password", h, "correct horse", true},
		{"wrong password", h, "correct horsf", false},
		{"prefix of password", h, "correct hors", false},
		{"empty password", h, "", false},
		{"empty hash", "", "correct horse", false},
		{"bcrypt hash", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", "correct horse", false},
		{"argon2i", strings.Replace(h, "argon2id", "argon2i", 1), "correct horse", false},
		{"other version", strings.Replace(h, "v=19", "v=16", 1), "correct horse", false},
		{"tampered key", h[:len(h)-2] + "AA", "correct horse", false},
		{"padded base64", h + "=", "correct horse", false},
		{"huge memory", strings.Replace(h, "m=64,", "m=4294967295,", 1), "correct horse", false},
		{"params reordered", strings.Replace(h, "m=64,t=1,p=1", "t=1,m=64,p=1", 1), "correct horse", false},
		{"leading zero", strings.Replace(h, "m=64,", "m=064,", 1), "correct horse", false},
		{"zero lanes", strings.Replace(h, "p=1", "p=0", 1), "correct horse", false},
	}
	for _, tt := range tests {
		if got := auth.VerifyPassword(tt.hash, tt.password); got != tt.want {
			t.Errorf("%s: VerifyPassword = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestHashPasswordDefaults(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB argon2id")
	}
	h, err := auth.HashPassword("s3cret!")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=2,p=2$") {
		t.Errorf("default hash %q does not use the documented parameters", h)
	}
	if !auth.VerifyPassword(h, "s3cret!") {
		t.Error("default hash does not verify")
	}
}

func TestHashPasswordRejects(t *testing.T) {
	tests := []struct {
		name     string
		password string
		params   auth.Params
		want     error
	}{
		{"empty", "", cheap, auth.ErrEmptyPassword},
		{"too long", strings.Repeat("x", auth.MaxPasswordLen+1), cheap, auth.ErrPasswordTooLong},
		{"short salt", "pw", auth.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 4, KeyLen: 32}, nil},
		{"no time", "pw", auth.Params{Memory: 64, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 32}, nil},
	}
	for _, tt := range tests {
		_, err := auth.HashPasswordParams(tt.password, tt.params)
		if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, err := auth.HashPasswordParams(strings.Repeat("x", auth.MaxPasswordLen), cheap); err != nil {
		t.Errorf("password of MaxPasswordLen: %v", err)
	}
}
