package archtest

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// docsPackageRow is a row of docs/architecture.md's package table: its
// first cell names one or more packages in backquotes.
var docsPackageRow = regexp.MustCompile("^\\| (`[^|]+`) \\|")

// The package table of docs/architecture.md names every package of the
// module and no package that is gone, so a newcomer's map is the code's.
func TestArchitectureDocNamesEveryPackage(t *testing.T) {
	raw, err := os.ReadFile("../../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n## Packages\n")
	if !ok {
		t.Fatal(`docs/architecture.md has no "## Packages" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var documented []string
	for line := range strings.Lines(section) {
		m := docsPackageRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		for name := range strings.SplitSeq(m[1], ",") {
			documented = append(documented, strings.Trim(strings.TrimSpace(name), "`"))
		}
	}
	var code []string
	for path := range load(t) {
		if name := rel(path); name != "" {
			code = append(code, name)
		}
	}
	if len(code) < 20 {
		t.Fatalf("go list found %d settle packages", len(code))
	}
	for _, name := range code {
		if !slices.Contains(documented, name) {
			t.Errorf("package %s is not in docs/architecture.md's package table: give it a row", name)
		}
	}
	for _, name := range documented {
		if !slices.Contains(code, name) {
			t.Errorf("docs/architecture.md's package table names %s, which is not a package of the module", name)
		}
	}
}
