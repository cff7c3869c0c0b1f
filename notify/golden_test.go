package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"

	"github.com/settle-dev/settle/notify"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden and docs/alerts.md from the code")

const docsPath = "../docs/alerts.md"

// TestGolden renders every example (Block Kit JSON, the plain-text fallback
// and the log notifier's line) and compares them with testdata/*.golden.
// Run with -update to rewrite the files after a deliberate change; then
// review the diff.
func TestGolden(t *testing.T) {
	for _, e := range examples() {
		t.Run(e.name, func(t *testing.T) {
			m := e.render()
			golden(t, e.name+".json.golden", prettyJSON(t, m))
			golden(t, e.name+".txt.golden", []byte(m.Text+"\n"))
			if e.msg == nil {
				golden(t, e.name+".log.golden", logLine(t, e))
			}
		})
	}
}

func prettyJSON(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// logLine is what the log notifier writes for the example, as JSON without
// the time.
func logLine(t *testing.T, e example) []byte {
	t.Helper()
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	n := notify.NewLog(logger)
	var err error
	if e.reply {
		err = n.Reply(context.Background(), notify.Ref{}, e.n)
	} else {
		_, err = n.Post(context.Background(), e.n)
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./notify -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the rendering (run go test ./notify -update, then review the diff):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestDocs checks that docs/alerts.md is what testdata/alerts.md.tmpl and
// the golden files make; -update rewrites it.
func TestDocs(t *testing.T) {
	got := buildDocs(t)
	if *update {
		if err := os.WriteFile(docsPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("docs/alerts.md is out of date: run `go generate ./notify` (or go test ./notify -update) and commit it")
	}
}

// docExample is one example as the docs template sees it.
type docExample struct {
	Name, Title, When string
	Text, JSON, Log   string
}

func buildDocs(t *testing.T) []byte {
	t.Helper()
	tmpl, err := template.ParseFiles(filepath.Join("testdata", "alerts.md.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	var data, buttons []docExample
	for _, e := range examples() {
		read := func(ext string) string {
			if e.msg != nil && ext == ".log.golden" {
				return ""
			}
			b, err := os.ReadFile(filepath.Join("testdata", e.name+ext))
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimRight(string(b), "\n")
		}
		d := docExample{
			Name: e.name, Title: e.title, When: e.when,
			Text: read(".txt.golden"), JSON: read(".json.golden"), Log: read(".log.golden"),
		}
		if e.msg != nil {
			buttons = append(buttons, d)
		} else {
			data = append(data, d)
		}
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, map[string]any{"Examples": data, "Buttons": buttons}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
