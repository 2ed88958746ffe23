package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is set at release build time:
//
//	go build -ldflags "-X main.version=v1.2.3" ./cmd/remit
//
// When empty, the module version recorded by the Go toolchain is used
// ("(devel)" for a build from a checkout).
var version string

// versionInfo is what `remit version --json` prints.
type versionInfo struct {
	Version  string `json:"version"`
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

func buildVersion() versionInfo {
	v := versionInfo{Version: version, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v.Version == "" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.time":
				v.Time = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	return v
}

var versionCmd = &command{
	name:    "version",
	summary: "print the version of this binary",
	usage:   "remit version [--json]",
	help: `
Version prints the release version (or "(devel)" for a build from a
checkout), the VCS revision when the build recorded one, and the Go version.`,
	examples: `
remit version
remit version --json`,
	flags: func(fs *flag.FlagSet) runFunc {
		asJSON := fs.Bool("json", false, "print JSON instead of text")
		return func(_ context.Context, e *env, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			v := buildVersion()
			if *asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			fmt.Fprintf(e.stdout, "remit %s", v.Version)
			if v.Revision != "" {
				rev := v.Revision
				if len(rev) > 12 {
					rev = rev[:12]
				}
				fmt.Fprintf(e.stdout, " (%s", rev)
				if v.Modified {
					fmt.Fprint(e.stdout, ", modified")
				}
				fmt.Fprint(e.stdout, ")")
			}
			fmt.Fprintf(e.stdout, " %s %s\n", v.Go, v.Platform)
			return nil
		}
	},
}
