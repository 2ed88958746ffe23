package auth

import (
	_ "embed" // the common password list
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MinPasswordLen is the shortest password [CheckPassword] accepts, in
// characters (Unicode code points).
const MinPasswordLen = 12

// ErrWeakPassword wraps every reason [CheckPassword] refuses a new password
// for. Its message, and the wrapping one, are written for the person who
// chose the password.
var ErrWeakPassword = errors.New("the new password is too weak")

//go:embed common-passwords.txt
var commonPasswordsFile string

// commonPasswords is the embedded list, lowercase.
var commonPasswords = func() map[string]struct{} {
	m := map[string]struct{}{}
	for line := range strings.SplitSeq(commonPasswordsFile, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m[strings.ToLower(line)] = struct{}{}
	}
	return m
}()

// CheckPassword applies the password policy to a new password of
// clientID: at least [MinPasswordLen] characters and at most
// [MaxPasswordLen] bytes, not one of the few hundred
// most common passwords (compared case-insensitively, also once trailing
// digits, spaces and punctuation are stripped, so "Password2026!" is
// refused), not the client id itself and not one character repeated. Every
// way of setting a password through the API applies it (Register,
// CreateUser, ResetPassword, ChangePassword); the users file, written by an
// operator, does not. The error wraps [ErrWeakPassword] and never contains
// the password.
func CheckPassword(clientID, password string) error {
	if n := utf8.RuneCountInString(password); n < MinPasswordLen {
		return fmt.Errorf("%w: use at least %d characters (this one has %d)", ErrWeakPassword, MinPasswordLen, n)
	}
	// The API allows 256 characters, the hash 256 bytes: refuse here, before
	// Register has the bank consume the code, not as an internal error.
	if len(password) > MaxPasswordLen {
		return fmt.Errorf("%w: use at most %d bytes (this one has %d; a non-ASCII character takes 2 to 4)", ErrWeakPassword, MaxPasswordLen, len(password))
	}
	lower := strings.ToLower(password)
	base := strings.TrimRightFunc(lower, func(r rune) bool {
		return unicode.IsDigit(r) || unicode.IsPunct(r) || unicode.IsSymbol(r) || unicode.IsSpace(r)
	})
	id := strings.ToLower(clientID)
	if id != "" && (lower == id || base == id) {
		return fmt.Errorf("%w: it must not be the client id", ErrWeakPassword)
	}
	if _, common := commonPasswords[lower]; common {
		return fmt.Errorf("%w: it is one of the most common passwords; choose another", ErrWeakPassword)
	}
	if _, common := commonPasswords[base]; common && base != "" {
		return fmt.Errorf("%w: it is a common password with a few characters added; choose another", ErrWeakPassword)
	}
	if first, _ := utf8.DecodeRuneInString(lower); strings.Trim(lower, string(first)) == "" {
		return fmt.Errorf("%w: it repeats one character", ErrWeakPassword)
	}
	return nil
}
