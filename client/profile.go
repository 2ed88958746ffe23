package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// StateDir returns the directory where Remit keeps a user's state (the
// login profile and the payment outbox): $REMIT_HOME if set, else
// $XDG_STATE_HOME/remit, else ~/.local/state/remit. It does not create it.
func StateDir() (string, error) {
	if d := os.Getenv("REMIT_HOME"); d != "" {
		return filepath.Abs(d)
	}
	// The XDG spec says relative values are invalid and must be ignored.
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "remit"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("client: no state directory: set REMIT_HOME (%w)", err)
	}
	return filepath.Join(home, ".local", "state", "remit"), nil
}

// ProfileFile is the name of the login profile inside the state directory.
const ProfileFile = "profile.json"

// ErrNoProfile is returned by LoadProfile when nobody has logged in.
var ErrNoProfile = errors.New("not logged in: run `remit login CLIENT_ID`")

// Profile is what `remit login` remembers for later commands: where the
// gateway is, which CA to trust, and the session. It holds a bearer token, so
// it is written with mode 0600 in a 0700 directory; it never holds a
// password.
type Profile struct {
	// GatewayURL is the gateway's base URL.
	GatewayURL string `json:"gateway_url"`
	// MoreGatewayURLs are its other replicas' (Config.MoreGatewayURLs).
	MoreGatewayURLs []string `json:"more_gateway_urls,omitempty"`
	// CAFile is the absolute path of the CA file, or empty for system roots.
	CAFile string `json:"ca_file,omitempty"`
	// ClientID is the logged-in client's id.
	ClientID string `json:"client_id"`
	// Account is the client's own account, "BANK/ACCOUNT", if it has one.
	Account string `json:"account,omitempty"`
	// Roles are the client's roles, e.g. ["ROLE_CUSTOMER"].
	Roles []string `json:"roles,omitempty"`
	// Token is the bearer token; a secret.
	Token string `json:"token"`
	// ExpireTime is when the token stops working.
	ExpireTime time.Time `json:"expire_time"`
}

// NewProfile builds the profile to save after a login on a client made
// from cfg.
func NewProfile(cfg Config, s *Session) *Profile {
	p := &Profile{GatewayURL: cfg.GatewayURL, MoreGatewayURLs: cfg.MoreGatewayURLs, CAFile: cfg.CAFile, Token: s.Token, ExpireTime: s.ExpireTime}
	if cfg.CAFile != "" {
		if abs, err := filepath.Abs(cfg.CAFile); err == nil {
			p.CAFile = abs
		}
	}
	if c := s.Client; c != nil {
		p.ClientID = c.GetClientId()
		if c.GetAccount() != nil {
			p.Account = AccountRefFromProto(c.GetAccount()).String()
		}
		for _, r := range c.GetRoles() {
			p.Roles = append(p.Roles, r.String())
		}
	}
	return p
}

// Config returns a client configuration that uses the profile's gateway,
// CA and token; the caller may override fields (flags, environment) before
// calling New.
func (p *Profile) Config() Config {
	return Config{GatewayURL: p.GatewayURL, MoreGatewayURLs: p.MoreGatewayURLs, CAFile: p.CAFile, Token: p.Token}
}

// Expired reports whether the token has expired at now.
func (p *Profile) Expired(now time.Time) bool {
	return !p.ExpireTime.IsZero() && !now.Before(p.ExpireTime)
}

// HasRole reports whether the profile lists role, e.g. "ROLE_ADMIN".
func (p *Profile) HasRole(role string) bool { return slices.Contains(p.Roles, role) }

// LoadProfile reads the profile from dir (see StateDir); ErrNoProfile if
// there is none.
func LoadProfile(dir string) (*Profile, error) {
	b, err := os.ReadFile(filepath.Join(dir, ProfileFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoProfile
	}
	if err != nil {
		return nil, fmt.Errorf("client: read profile: %w", err)
	}
	var p Profile
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("client: profile %s is corrupt (log in again): %w", filepath.Join(dir, ProfileFile), err)
	}
	return &p, nil
}

// Save writes the profile to dir atomically (a crash leaves the old or the
// new profile, never half of one), readable by the user only.
func (p *Profile) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("client: create state directory: %w", err)
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ProfileFile+".*.tmp")
	if err != nil {
		return fmt.Errorf("client: save profile: %w", err)
	}
	tmp := f.Name()
	// Cleanup only: after the rename there is no tmp to remove (ENOENT),
	// and after a failure the failure is the error to report.
	defer func() { _ = os.Remove(tmp) }()
	if err := f.Chmod(0o600); err != nil {
		_ = f.Close() // the profile is not saved either way; report why
		return fmt.Errorf("client: save profile: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		_ = f.Close() // the profile is not saved either way; report why
		return fmt.Errorf("client: save profile: %w", err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close() // the profile is not saved either way; report why
		return fmt.Errorf("client: save profile: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("client: save profile: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, ProfileFile)); err != nil {
		return fmt.Errorf("client: save profile: %w", err)
	}
	return nil
}

// RemoveProfile deletes the profile in dir (logout); a missing profile is
// not an error.
func RemoveProfile(dir string) error {
	err := os.Remove(filepath.Join(dir, ProfileFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("client: remove profile: %w", err)
	}
	return nil
}
