package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/v2"
)

const (
	envPrefix         = "SETTLE_"
	providerEnvPrefix = "SETTLE_PROVIDERS_"
)

// nonConfigEnv lists the SETTLE_ variables that tooling reads and Load must
// not refuse: the sandbox bank's token, the config path used by the CLI, and
// everything starting SETTLE_TEST_ or SETTLE_DEV_ (names ending in '_' are
// prefixes).
var nonConfigEnv = []string{"SETTLE_BANKSIM_TOKEN", "SETTLE_CONFIG", "SETTLE_TEST_", "SETTLE_DEV_"}

// envName returns the variable that overrides the scalar key.
func envName(key string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// providerEnvName returns the NAME part of a provider's SETTLE_PROVIDERS_
// variables.
func providerEnvName(name string) string {
	return strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

func isNonConfigEnv(name string) bool {
	for _, n := range nonConfigEnv {
		if name == n || strings.HasSuffix(n, "_") && strings.HasPrefix(name, n) {
			return true
		}
	}
	return false
}

// applyEnv loads the SETTLE_ overrides in environ into k, recording in origin
// which variable set each key. It returns a problem for each variable that is
// not a known override.
func applyEnv(k *koanf.Koanf, environ []string, origin map[string]string) []error {
	known := make(map[string]string)
	for _, key := range scalarKeys(configType, "") {
		known[envName(key)] = key
	}
	vars := settleVars(environ)
	names := make([]string, 0, len(vars))
	for name := range vars {
		names = append(names, name)
	}
	sort.Strings(names)

	var errs []error
	flat := make(map[string]any)
	providers, _ := k.Raw()["providers"].([]any)
	providersChanged := false
	for _, name := range names {
		switch key, ok := known[name]; {
		case isNonConfigEnv(name):
		case ok:
			flat[key] = vars[name]
			origin[key] = name
		case strings.HasPrefix(name, providerEnvPrefix):
			if err := applyProviderEnv(providers, name, vars[name], origin); err != nil {
				errs = append(errs, err)
			} else {
				providersChanged = true
			}
		default:
			errs = append(errs, unknownEnv(name, known, providers))
		}
	}
	for key := range flat {
		// A secret set this way replaces its file (app_token_file).
		if _, ok := known[envName(key+"_file")]; ok {
			k.Delete(key + "_file")
		}
	}
	if len(flat) > 0 {
		_ = k.Load(confmap.Provider(flat, "."), nil) // confmap cannot fail
	}
	if providersChanged {
		_ = k.Load(confmap.Provider(map[string]any{"providers": providers}, ""), nil)
	}
	return errs
}

// settleVars returns the SETTLE_ variables of environ that have a value; the
// last of repeated names wins.
func settleVars(environ []string) map[string]string {
	vars := make(map[string]string)
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, envPrefix) {
			continue
		}
		if value == "" {
			delete(vars, name)
			continue
		}
		vars[name] = value
	}
	return vars
}

// applyProviderEnv applies SETTLE_PROVIDERS_<NAME>_TOKEN, _CLIENT_SECRET or _BASE_URL to the
// provider items (as loaded from the file) whose name matches.
func applyProviderEnv(items []any, name, value string, origin map[string]string) error {
	rest := strings.TrimPrefix(name, providerEnvPrefix)
	var key string
	switch {
	case strings.HasSuffix(rest, "_CLIENT_SECRET"):
		key, rest = "client_secret", strings.TrimSuffix(rest, "_CLIENT_SECRET")
	case strings.HasSuffix(rest, "_TOKEN"):
		key, rest = "token", strings.TrimSuffix(rest, "_TOKEN")
	case strings.HasSuffix(rest, "_BASE_URL"):
		key, rest = "base_url", strings.TrimSuffix(rest, "_BASE_URL")
	default:
		return fmt.Errorf("config: environment variable %s: only SETTLE_PROVIDERS_<NAME>_TOKEN, _CLIENT_SECRET and _BASE_URL can be set for a provider", name)
	}
	var found []int
	for i, item := range items {
		m, _ := item.(map[string]any)
		if n, ok := m["name"].(string); ok && providerEnvName(n) == rest {
			found = append(found, i)
		}
	}
	switch len(found) {
	case 0:
		return fmt.Errorf("config: environment variable %s: no provider in the file is named %s (providers: %s)",
			name, strings.ToLower(rest), strings.Join(itemNames(items), ", "))
	case 1:
	default:
		return fmt.Errorf("config: environment variable %s: matches more than one provider", name)
	}
	m := items[found[0]].(map[string]any)
	m[key] = value
	delete(m, key+"_file") // token_file, client_secret_file

	origin[fmt.Sprintf("providers[%d].%s", found[0], key)] = name
	return nil
}

// itemNames returns the names of the provider items that have one.
func itemNames(items []any) []string {
	var names []string
	for _, item := range items {
		m, _ := item.(map[string]any)
		if n, ok := m["name"].(string); ok {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return []string{"none"}
	}
	return names
}

// unknownEnv describes a SETTLE_ variable that is not an override.
func unknownEnv(name string, known map[string]string, items []any) error {
	candidates := make([]string, 0, len(known))
	for n := range known {
		candidates = append(candidates, n)
	}
	for _, p := range itemNames(items) {
		candidates = append(candidates,
			providerEnvPrefix+providerEnvName(p)+"_TOKEN",
			providerEnvPrefix+providerEnvName(p)+"_CLIENT_SECRET",
			providerEnvPrefix+providerEnvName(p)+"_BASE_URL")
	}
	sort.Strings(candidates)
	if s := suggest(name, candidates); s != "" {
		return fmt.Errorf("config: unknown environment variable %s (did you mean %s?)", name, s)
	}
	return fmt.Errorf("config: unknown environment variable %s: SETTLE_ variables must name a config key (tools may use SETTLE_TEST_* or SETTLE_DEV_*)", name)
}
