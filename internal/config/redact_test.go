package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/knadh/koanf/parsers/yaml"
)

func TestRedactURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"postgres://settle:pw@db:5432/settle?sslmode=disable", "postgres://settle:[redacted]@db:5432/settle?sslmode=disable"},
		{"postgres://settle@db/settle", "postgres://settle@db/settle"},
		{"postgres://settle:@db/settle", "postgres://settle:[redacted]@db/settle"},
		{"redis://:pw@redis:6379/0", "redis://:[redacted]@redis:6379/0"},
		{"rediss://default:pw@redis:6380", "rediss://default:[redacted]@redis:6380"},
		{"redis://redis:6379/0", "redis://redis:6379/0"},
		{"postgres://u%40x:p%40ss@db/s", "postgres://u%40x:[redacted]@db/s"},
		{"postgres://u:pw@/settle?host=/run/pg", "postgres://u:[redacted]@/settle?host=/run/pg"},
		{"postgres://db/s?sslmode=disable&password=pw&Token=t", "postgres://db/s?sslmode=disable&password=[redacted]&Token=[redacted]"},
		{"https://bank/api#frag", "https://bank/api"},
		{"host=db password=pw", "[redacted]"},    // a DSN, not a URL
		{"postgres://u:p%zz@db/s", "[redacted]"}, // does not parse
		{"token:abc", "[redacted]"},              // opaque: could be anything
		{"postgres://u:pw@", "[redacted]"},       // nothing after the user info
		{"just-a-token", "[redacted]"},           // no scheme
		{"postgres://settle:p@ss@db/s", "postgres://settle:[redacted]@db/s"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSecret(t *testing.T) {
	t.Parallel()
	s := Secret(tokenSecret)
	if s.Reveal() != tokenSecret {
		t.Errorf("Reveal() = %q", s.Reveal())
	}
	j, _ := s.MarshalJSON()
	txt, _ := s.MarshalText()
	shown := []string{
		s.String(), s.GoString(), s.LogValue().String(), string(txt),
		fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q %x %d %10.3s", s, s, s, s, s, s, s, s),
	}
	for _, got := range shown {
		assertNoSecret(t, "Secret", got)
		if !strings.Contains(got, redacted) {
			t.Errorf("Secret shown as %q, want %q", got, redacted)
		}
	}
	if string(j) != `"[redacted]"` {
		t.Errorf("MarshalJSON = %s", j)
	}
}

func TestRedaction(t *testing.T) {
	t.Parallel()
	cfg, err := load(t, valid)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cfg.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecret(t, "Redacted()", string(out))
	doc, err := yaml.Parser().Unmarshal(out)
	if err != nil {
		t.Fatalf("Redacted() is not YAML: %v\n%s", err, out)
	}
	db := doc["database"].(map[string]any)
	if got, want := db["url"], "postgres://settle:[redacted]@db.internal:5432/settle?sslmode=disable"; got != want {
		t.Errorf("database.url = %v, want %v", got, want)
	}
	if got, want := doc["redis"].(map[string]any)["url"], "redis://:[redacted]@redis.internal:6379/0"; got != want {
		t.Errorf("redis.url = %v, want %v", got, want)
	}
	p := doc["providers"].([]any)[0].(map[string]any)
	if p["token"] != redacted {
		t.Errorf("providers[0].token = %v, want %s", p["token"], redacted)
	}
	if _, ok := p["token_file"]; ok {
		t.Errorf("providers[0].token_file shown though unset")
	}
	if got := doc["worker"].(map[string]any)["lease"]; got != "30s" {
		t.Errorf("worker.lease = %v, want 30s", got)
	}
	if got := doc["poll"].(map[string]any)["batch_size"]; got != 100 {
		t.Errorf("poll.batch_size = %v (%T), want 100: Redacted shows the defaults", got, got)
	}

	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		assertNoSecret(t, "fmt "+verb, fmt.Sprintf(verb, cfg))
		assertNoSecret(t, "fmt "+verb, fmt.Sprintf(verb, *cfg))
	}
	j, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecret(t, "JSON", string(j))

	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("loaded", "config", cfg, "value", *cfg)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("loaded", "config", cfg, "value", *cfg)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("token", "token", cfg.Providers[0].Token)
	assertNoSecret(t, "slog", buf.String())
	if !strings.Contains(buf.String(), redacted) {
		t.Errorf("slog output has no %s:\n%s", redacted, buf.String())
	}
}
