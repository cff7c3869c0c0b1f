package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// buildVersion is what settle version prints: the module's version, or the
// commit it was built from, and the Go that built it.
type buildVersion struct {
	// Version is the module version ("v1.4.0" when installed with go
	// install …@v1.4.0; "(devel)" when built from a checkout).
	Version string `json:"version"`
	// Revision is the commit a checkout was built from, Modified whether
	// it had uncommitted changes, and CommitTime when the commit was made
	// (RFC 3339); empty when the build recorded no version control.
	Revision   string `json:"revision,omitempty"`
	Modified   bool   `json:"modified,omitempty"`
	CommitTime string `json:"commit_time,omitempty"`
	Go         string `json:"go"`
	Platform   string `json:"platform"`
}

func readBuildVersion() buildVersion {
	v := buildVersion{Version: "unknown", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if info.Main.Version != "" {
		v.Version = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		case "vcs.time":
			v.CommitTime = s.Value
		}
	}
	return v
}

// String is the version in a line: "settle (devel) 372d20ac424d+modified
// go1.26.8 linux/amd64"; the revision is left out when the version, a
// pseudo-version Go made from it (v0.0.0-20261207060239-372d20ac424d, with
// +dirty when modified), names it already.
func (v buildVersion) String() string {
	parts := []string{"settle", v.Version}
	if rev := v.Revision[:min(12, len(v.Revision))]; rev != "" && !strings.Contains(v.Version, rev) {
		if v.Modified {
			rev += "+modified"
		}
		parts = append(parts, rev)
	}
	return strings.Join(append(parts, v.Go, v.Platform), " ")
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print settle's version: the module version or the commit it was built from, and the Go that built it",
		Example: "  settle version\n" +
			"  settle version --json",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := readBuildVersion()
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), v)
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), v)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
