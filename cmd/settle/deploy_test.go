package main

import (
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/knadh/koanf/parsers/yaml"

	"github.com/settle-dev/settle/internal/config"
)

// The example Kubernetes manifest gives each component its own database
// user and only the secrets it uses: the migration Job connects as the
// schema's owner and nothing else does; the web role holds no bank or Slack
// secret, and only the scheduler, which delivers alerts, holds Slack's.
// Each component's configuration loads as its command loads it, with
// exactly the secrets it is given.
func TestKubernetesManifest(t *testing.T) {
	type workload struct {
		name    string
		args    []string
		secrets []string
	}
	var settleYAML string
	secrets := map[string]map[string]any{}
	var workloads []workload
	for _, doc := range strings.Split(readFile(t, "../../docs/deploy/kubernetes.yaml"), "\n---\n") {
		m, err := yaml.Parser().Unmarshal([]byte(doc))
		if err != nil {
			t.Fatalf("%v:\n%s", err, doc)
		}
		name := dig(m, "metadata", "name").(string)
		switch m["kind"] {
		case "ConfigMap":
			settleYAML = dig(m, "data", "settle.yaml").(string)
		case "Secret":
			secrets[name] = dig(m, "stringData").(map[string]any)
		case "Job", "Deployment":
			containers := dig(m, "spec", "template", "spec", "containers").([]any)
			if len(containers) != 1 {
				t.Fatalf("%s: %d containers", name, len(containers))
			}
			c := containers[0].(map[string]any)
			w := workload{name: name}
			for _, a := range c["args"].([]any) {
				w.args = append(w.args, a.(string))
			}
			for _, from := range c["envFrom"].([]any) {
				w.secrets = append(w.secrets, dig(from.(map[string]any), "secretRef", "name").(string))
			}
			if c["env"] != nil {
				t.Errorf("%s: env entries; give secrets through envFrom, one Secret each", name)
			}
			workloads = append(workloads, w)
		}
	}
	path := writeConfig(t, settleYAML)
	users := map[string]string{}          // workload → database user
	holds := map[string]map[string]bool{} // workload → variable prefix → held
	used := map[string]bool{}
	for _, w := range workloads {
		var env []string
		holds[w.name] = map[string]bool{}
		for _, s := range w.secrets {
			used[s] = true
			if secrets[s] == nil {
				t.Fatalf("%s: no Secret %s", w.name, s)
			}
			for k, v := range secrets[s] {
				env = append(env, k+"="+v.(string))
				for _, prefix := range []string{"SETTLE_PROVIDERS_", "SETTLE_NOTIFY_SLACK_", "SETTLE_REDIS_"} {
					holds[w.name][prefix] = holds[w.name][prefix] || strings.HasPrefix(k, prefix)
				}
				if k == "SETTLE_DATABASE_URL" {
					u, err := url.Parse(v.(string))
					if err != nil {
						t.Fatal(err)
					}
					users[w.name] = u.User.Username()
				}
			}
		}
		var uses config.Uses // as the command loads its configuration
		switch {
		case w.args[0] == "migrate":
			uses = config.Uses{NoRedis: true, NoBanks: true}
		case slices.Contains(w.args, roleWeb):
			uses = config.Uses{NoBanks: true}
		}
		if _, err := config.LoadFor(path, env, uses); err != nil {
			t.Errorf("%s (%s) with its secrets %v: %v", w.name, strings.Join(w.args, " "), w.secrets, err)
		}
	}
	for s := range secrets {
		if !used[s] {
			t.Errorf("Secret %s is given to no component", s)
		}
	}
	owner := users["settle-migrate"]
	if owner != "settle_migrator" {
		t.Errorf("the migration Job connects as %q, want the schema's owner settle_migrator", owner)
	}
	for _, name := range []string{"settle-worker", "settle-scheduler", "settle-web"} {
		if users[name] == "" || users[name] == owner {
			t.Errorf("%s connects as %q: not the schema's owner %q, a member of settle_daemon or settle_operator", name, users[name], owner)
		}
	}
	for name, want := range map[string]map[string]bool{
		"settle-migrate":   {"SETTLE_PROVIDERS_": false, "SETTLE_NOTIFY_SLACK_": false, "SETTLE_REDIS_": false},
		"settle-worker":    {"SETTLE_PROVIDERS_": true, "SETTLE_NOTIFY_SLACK_": false, "SETTLE_REDIS_": true},
		"settle-scheduler": {"SETTLE_PROVIDERS_": true, "SETTLE_NOTIFY_SLACK_": true, "SETTLE_REDIS_": true},
		"settle-web":       {"SETTLE_PROVIDERS_": false, "SETTLE_NOTIFY_SLACK_": false, "SETTLE_REDIS_": true},
	} {
		for prefix, held := range want {
			if holds[name][prefix] != held {
				t.Errorf("%s holds %s*: %v, want %v", name, prefix, holds[name][prefix], held)
			}
		}
	}
}

// dig walks nested YAML maps by key.
func dig(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		next, _ := v.(map[string]any)
		v = next[k]
	}
	return v
}
