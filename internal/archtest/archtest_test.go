package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// module is settle's module path; the tables below name its packages
// relative to it.
const module = "github.com/settle-dev/settle"

// binary is the package of the settle command.
const binary = "cmd/settle"

// layers lists, for every settle package, the settle packages its non-test
// files may import. A package that is not here fails the test: give it its
// place first. Test-only packages (no non-test files) need no entry.
var layers = map[string][]string{
	// The domain: the plan, the states, the executor and its ports.
	"pipeline":   nil,
	"migrations": nil, // the SQL files, embedded

	// The adapters of pipeline's ports, each on its own.
	"store":            {"pipeline", "migrations"},
	"bank":             {"pipeline"},
	"bank/banksim":     {"pipeline"},
	"bank/transport":   {"pipeline"},
	"bank/bankhttp":    {"pipeline", "bank/transport"},
	"bank/rest":        {"pipeline", "bank/transport", "bank/bankhttp"},
	"bank/openbanking": {"pipeline", "bank/transport", "bank/bankhttp"},
	"bank/dialects":    {"pipeline", "bank/bankhttp", "bank/rest", "bank/openbanking"},
	"bank/throttle":    {"pipeline"},
	"bank/provcheck":   {"pipeline"},
	"notify":           {"pipeline"},
	"jobs/cronspec":    nil,

	// The background work and the operator HTTP server, over the adapters.
	"jobs": {"pipeline", "store", "notify", "jobs/cronspec"},
	"web":  {"pipeline", "store"},

	// What cmd/settle uses besides.
	"internal/config":      {"jobs/cronspec"},
	"internal/crash":       {"pipeline"},
	"internal/customercsv": {"pipeline", "store"},
	"internal/demo":        {"pipeline", "store", "bank/banksim"},
	"internal/localsvc":    nil,
	// The payday benchmark behind `settle bench`: it runs the engine as
	// settle serve does, on a throw-away installation.
	"internal/bench": {"pipeline", "store", "jobs", "bank/banksim", "bank/dialects", "web",
		"internal/config", "internal/demo", "internal/localsvc"},

	// The command wires everything; see wiresAll.
	binary: nil,

	// Test support (see testSupport) and this package.
	"internal/settletest": {"pipeline", "store", "bank/banksim", "internal/testenv"},
	"internal/testenv":    {"internal/localsvc"},
	"internal/testcert":   nil,
	"bank/banktest":       {"pipeline", "bank/banksim", "bank/transport", "internal/testcert"},
	"notify/notifytest":   nil,
	"internal/archtest":   nil,
	"internal/chaos":      nil, // the seeded fault-injection run: all in _test.go files
}

// wiresAll is the package that may import every settle package that is not
// test support.
const wiresAll = binary

// onlyImportedBy names settle packages that only the listed ones may import.
var onlyImportedBy = map[string][]string{
	"internal/bench": {binary}, // linked into the binary for `settle bench` only
}

// testSupport are the packages that exist for tests: no package of the
// binary may import them.
var testSupport = []string{
	"internal/settletest", "internal/testenv", "internal/testcert", "bank/banktest", "notify/notifytest",
}

// notInBinary are standard packages the settle binary must not link.
var notInBinary = []string{"testing", "net/http/httptest"}

// pipelineIO are the standard packages that do I/O, which pipeline may not
// import; a trailing "/" also forbids the packages below.
var pipelineIO = []string{
	"os", "os/", "net", "net/", "database/", "syscall", "io/fs", "io/ioutil", "path/filepath",
	"crypto/tls", "log", "log/syslog", "embed", "plugin",
}

// importer is one package allowed to import a library, and why.
type importer struct{ pkg, why string }

// owners lists, for each third-party library (a module path, or a prefix
// of module paths), the settle packages whose non-test files may import
// it: the owner first, then each exception with its reason. The longest
// matching key applies. A library that is not here fails the test.
var owners = map[string][]importer{
	"github.com/robfig/cron/v3": {{"jobs", "owner"},
		{"jobs/cronspec", "the one parser of cron specs, through which internal/config checks schedules"}},
	"github.com/hibiken/asynq": {{"jobs", "owner"},
		{binary, "wires what jobs builds: holds jobs.NewWorker's server and mux and the Redis options of jobs.ParseRedisURL, and opens the Inspector behind the queue metrics"},
		{"internal/bench", "measures the bare Asynq floor (no-op tasks on a scratch queue) and what a queued task weighs in Redis"}},
	"github.com/hibiken/asynq/x":  {{binary, "owner: the queue-metrics collector it hands to web's /metrics"}},
	"github.com/hibiken/asynqmon": {{binary, "owner: builds the read-only dashboard from the Redis options; web serves it as a plain http.Handler"}},
	"github.com/redis/go-redis/v9": {{"jobs", "owner: checks Redis's eviction policy"},
		{"internal/bench", "reads its private Redis's INFO (memory, commands) for the report"},
		{"internal/testenv", "test support: drops go-redis's pool log lines for the tests that dial a closed port on purpose"}},
	"github.com/jmoiron/sqlx": {{"store", "owner"}},
	"github.com/lib/pq": {{"store", "owner"},
		{"internal/localsvc", "quotes the names of the throw-away databases it creates and drops"},
		{"internal/testenv", "quotes test roles in CREATE ROLE and DROP ROLE; test support"}},
	"github.com/pressly/goose/v3": {{"store", "owner"}},
	"github.com/slack-go/slack":   {{"notify", "owner"}},
	"github.com/spf13/cobra":      {{binary, "owner"}},
	"github.com/knadh/koanf":      {{"internal/config", "owner"}},
	"github.com/prometheus/client_golang": {{"web", "owner"},
		{binary, "hands web the asynq queue collector as a prometheus.Collector"}},
	"golang.org/x/oauth2": {{"bank/transport", "owner"}},
	"golang.org/x/time":   {{"bank/throttle", "owner"}},
	"golang.org/x/sync":   {{"internal/bench", "owner: errgroup for its parallel seeding and floor measurements"}},
}

// pkg is what the test reads of `go list -json`.
type pkg struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	CgoFiles   []string
	Imports    []string
	Standard   bool
	Module     *struct{ Path, Dir string }
}

type graph map[string]*pkg

func TestImportRules(t *testing.T) {
	g := load(t)
	var own []*pkg
	for _, p := range g {
		if rel(p.ImportPath) != "" {
			own = append(own, p)
		}
	}
	slices.SortFunc(own, func(a, b *pkg) int { return strings.Compare(a.ImportPath, b.ImportPath) })
	if len(own) < len(layers)/2 {
		t.Fatalf("go list found %d settle packages, the layering table has %d: is this the settle module?", len(own), len(layers))
	}

	t.Run("pipeline imports only the standard library, without I/O", func(t *testing.T) {
		p := g[module+"/pipeline"]
		if p == nil {
			t.Fatal("no package pipeline")
		}
		for _, imp := range p.Imports {
			switch d := g[imp]; {
			case d == nil || !d.Standard:
				report(t, p, imp, "pipeline, the domain, imports only the standard library")
			case matchesAny(imp, pipelineIO):
				report(t, p, imp, "pipeline does no I/O: it reaches the world through its ports (StepStore, Banks, Queue)")
			}
		}
	})

	t.Run("layering", func(t *testing.T) {
		for _, p := range own {
			name := rel(p.ImportPath)
			allowed, placed := layers[name]
			if !placed {
				if len(p.GoFiles)+len(p.CgoFiles) > 0 {
					t.Errorf("%s: the package has no place in the layering table of %s: add it, with the settle packages it may import",
						name, self())
				}
				continue
			}
			for _, imp := range p.Imports {
				dep := rel(imp)
				switch {
				case dep == "":
				case strings.HasPrefix(dep, "cmd/"):
					report(t, p, imp, "nothing imports a command")
				case onlyImportedBy[dep] != nil && !slices.Contains(onlyImportedBy[dep], name):
					report(t, p, imp, fmt.Sprintf("only %s may import %s", strings.Join(onlyImportedBy[dep], ", "), dep))
				case name == wiresAll: // its test-support imports fail the rule below
				case !slices.Contains(allowed, dep):
					report(t, p, imp, fmt.Sprintf("%s may import only %s (the layering table in %s)", name, list(allowed), self()))
				}
			}
		}
	})

	t.Run("production code imports no test support", func(t *testing.T) {
		for _, p := range own {
			if slices.Contains(testSupport, rel(p.ImportPath)) {
				continue
			}
			for _, imp := range p.Imports {
				if slices.Contains(testSupport, rel(imp)) {
					report(t, p, imp, "test support is for _test.go files only")
				}
			}
		}
		// What the binary links, through any chain of imports.
		via := map[string]string{module + "/" + binary: ""}
		queue := []string{module + "/" + binary}
		for len(queue) > 0 {
			cur := queue[0]
			queue = queue[1:]
			for _, imp := range g[cur].Imports {
				if _, seen := via[imp]; !seen && g[imp] != nil {
					via[imp] = cur
					queue = append(queue, imp)
				}
			}
		}
		var linked []string
		for path := range via {
			name := rel(path)
			if name != "" {
				linked = append(linked, name)
			}
			if slices.Contains(testSupport, name) || slices.Contains(notInBinary, path) {
				chain := []string{path}
				for p := via[path]; p != ""; p = via[p] {
					chain = append([]string{p}, chain...)
				}
				t.Errorf("the settle binary links %s: %s", path, strings.Join(chain, " → "))
			}
		}
		slices.Sort(linked)
		t.Logf("the settle binary links %d settle packages: %s", len(linked), strings.Join(linked, " "))
	})

	t.Run("each third-party library has one owner", func(t *testing.T) {
		used := map[importer]bool{}
		for _, p := range own {
			name := rel(p.ImportPath)
			for _, imp := range p.Imports {
				d := g[imp]
				if d == nil || d.Standard || rel(imp) != "" || d.Module == nil {
					continue
				}
				key, who := ownersOf(d.Module.Path)
				switch {
				case who == nil:
					report(t, p, imp, fmt.Sprintf("the library %s has no owner: add it to the owners table in %s", d.Module.Path, self()))
				default:
					i := slices.IndexFunc(who, func(i importer) bool { return i.pkg == name })
					if i < 0 {
						report(t, p, imp, fmt.Sprintf("%s belongs to %s; go through it, or add %s to the owners table in %s with the reason",
							key, who[0].pkg, name, self()))
						continue
					}
					used[who[i]] = true
				}
			}
		}
		// The table stays true: an importer that no longer imports its
		// library is taken out.
		for _, key := range slices.Sorted(maps.Keys(owners)) {
			who := owners[key]
			for i, w := range who {
				switch {
				case !used[w]:
					t.Errorf("the owners table in %s lets %s import %s, which it no longer does: remove the line", self(), w.pkg, key)
				case i > 0:
					t.Logf("%s is imported by %s besides its owner %s: %s", key, w.pkg, who[0].pkg, w.why)
				}
			}
		}
	})
}

// load runs `go list -deps -json` on the whole module.
func load(t *testing.T) graph {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-json", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	g := graph{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		g[p.ImportPath] = &p
	}
	return g
}

// rel is path relative to the module, or "" when it is not a settle package.
func rel(path string) string {
	name, ok := strings.CutPrefix(path, module+"/")
	if !ok {
		return ""
	}
	return name
}

// ownersOf returns the owners entry whose key is the longest prefix of the
// module path mod, and that key.
func ownersOf(mod string) (string, []importer) {
	best := ""
	for key := range owners {
		if (mod == key || strings.HasPrefix(mod, key+"/")) && len(key) > len(best) {
			best = key
		}
	}
	return best, owners[best]
}

// matchesAny reports whether path is one of patterns, or lies below one that
// ends in "/".
func matchesAny(path string, patterns []string) bool {
	for _, pat := range patterns {
		if path == pat || strings.HasSuffix(pat, "/") && strings.HasPrefix(path, pat) {
			return true
		}
	}
	return false
}

func list(names []string) string {
	if len(names) == 0 {
		return "no settle package"
	}
	return strings.Join(names, ", ")
}

// self names this file, for the messages that say where a table is.
func self() string { return "internal/archtest/archtest_test.go" }

// report fails the test with where p imports imp and the rule it breaks.
func report(t *testing.T, p *pkg, imp, rule string) {
	t.Helper()
	t.Errorf("%s: %s imports %s: %s", where(p, imp), p.ImportPath, imp, rule)
}

// where is the file:line of p's import of imp, relative to the module's
// directory.
func where(p *pkg, imp string) string {
	root := ""
	if p.Module != nil {
		root = p.Module.Dir
	}
	fset := token.NewFileSet()
	for _, f := range append(slices.Clone(p.GoFiles), p.CgoFiles...) {
		path := filepath.Join(p.Dir, f)
		file, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			continue
		}
		for _, s := range file.Imports {
			if v, err := strconv.Unquote(s.Path.Value); err == nil && v == imp {
				pos := fset.Position(s.Pos())
				if r, err := filepath.Rel(root, pos.Filename); err == nil && root != "" {
					pos.Filename = r
				}
				return fmt.Sprintf("%s:%d", pos.Filename, pos.Line)
			}
		}
	}
	return p.Dir
}
