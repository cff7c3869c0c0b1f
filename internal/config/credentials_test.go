package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/settle-dev/settle/internal/testcert"
)

const clientSecret = "s3cret-client-7d1e"

// oauthKeys are a provider's OAuth keys in place of its token.
var oauthKeys = map[string]string{"token": "-", "token_url": "https://auth.bank.example/oauth/2.0/token",
	"client_id": "settle", "client_secret": clientSecret, "scopes": "inquiry transfer"}

func with(base map[string]string, over map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range base {
		m[k] = v
	}
	for k, v := range over {
		m[k] = v
	}
	return m
}

func TestProviderOAuth(t *testing.T) {
	t.Parallel()
	secrets := append(secrets, clientSecret)
	cfg, err := load(t, dbRedis+providers(provider(oauthKeys)))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Providers[0]
	if p.TokenURL != oauthKeys["token_url"] || p.ClientID != "settle" || p.ClientSecret.Reveal() != clientSecret || p.Scopes != "inquiry transfer" || p.Token != "" {
		t.Fatalf("provider %+v: OAuth keys not loaded", p)
	}
	out, err := cfg.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), clientSecret) || !strings.Contains(string(out), "client_secret: '[redacted]'") {
		t.Errorf("config show does not hide client_secret:\n%s", out)
	}

	// From the environment, replacing a client_secret_file.
	cfg, err = load(t, dbRedis+providers(provider(with(oauthKeys, map[string]string{"client_secret": "-", "client_secret_file": "missing.txt"}))),
		"SETTLE_PROVIDERS_SANDBOX_CLIENT_SECRET="+clientSecret)
	if err != nil || cfg.Providers[0].ClientSecret.Reveal() != clientSecret {
		t.Fatalf("SETTLE_PROVIDERS_SANDBOX_CLIENT_SECRET: %v", err)
	}
	// From a file beside the config.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "client-secret"), []byte(clientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := dbRedis + providers(provider(with(oauthKeys, map[string]string{"client_secret": "-", "client_secret_file": "client-secret"})))
	if err := os.WriteFile(filepath.Join(dir, "settle.yaml"), []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = Load(filepath.Join(dir, "settle.yaml"), nil)
	if err != nil || cfg.Providers[0].ClientSecret.Reveal() != clientSecret {
		t.Fatalf("client_secret_file: %v", err)
	}
	_ = secrets
}

func TestProviderCredentialErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		over map[string]string
		want []string
	}{
		{"no credentials", map[string]string{"token": "-"}, []string{"providers[0] has no credentials: set token (or token_file, SETTLE_PROVIDERS_SANDBOX_TOKEN), or OAuth token_url, client_id and client_secret"}},
		{"token and oauth", with(oauthKeys, map[string]string{"token": tokenSecret}), []string{"providers[0]: set token or OAuth client credentials (token_url, client_id, client_secret), not both"}},
		{"no token_url", with(oauthKeys, map[string]string{"token_url": "-"}), []string{"providers[0].token_url is required with client_id and client_secret"}},
		{"no client_id", with(oauthKeys, map[string]string{"client_id": "-"}), []string{"providers[0].client_id is required with token_url"}},
		{"no client_secret", with(oauthKeys, map[string]string{"client_secret": "-"}), []string{"providers[0].client_secret is required with token_url: set client_secret, client_secret_file or SETTLE_PROVIDERS_SANDBOX_CLIENT_SECRET"}},
		{"plain http token_url", with(oauthKeys, map[string]string{"token_url": "http://auth.bank.example/token"}), []string{`providers[0].token_url "http://auth.bank.example/token": must be an https:// URL`}},
		{"token_url with user", with(oauthKeys, map[string]string{"token_url": "https://u:" + tokenSecret + "@auth.bank.example/token"}), []string{"providers[0].token_url"}},
		{"client_id with space", with(oauthKeys, map[string]string{"client_id": `"set tle"`}), []string{`providers[0].client_id "set tle": must hold no spaces or control characters`}},
		{"client_secret with space", with(oauthKeys, map[string]string{"client_secret": `"` + clientSecret + ` x"`}), []string{"providers[0].client_secret: must hold no spaces or control characters"}},
		{"bad scope", with(oauthKeys, map[string]string{"scopes": `'in"quiry'`}), []string{`providers[0].scopes "in\"quiry": must be scope names separated by spaces`}},
		{"client_secret and its file", with(oauthKeys, map[string]string{"client_secret_file": "x"}), []string{"providers[0]: set client_secret or client_secret_file, not both"}},
		{"missing client_secret_file", with(oauthKeys, map[string]string{"client_secret": "-", "client_secret_file": "nope.txt"}), []string{`providers[0].client_secret_file "nope.txt": no such file or directory`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(t, dbRedis+providers(provider(c.over)))
			wantErrors(t, err, c.want...)
			if err != nil && strings.Contains(err.Error(), clientSecret) {
				t.Errorf("error shows the client secret: %v", err)
			}
		})
	}
}

func TestProviderTLS(t *testing.T) {
	t.Parallel()
	ca := testcert.NewCA(t, "bank")
	client := ca.Client("settle")
	other := testcert.NewCA(t, "other").Client("settle")
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	brokenCA := filepath.Join(dir, "broken-ca.pem") // a PEM block of the right type that holds no certificate
	if err := os.WriteFile(brokenCA, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := os.ReadFile(client.KeyFile)
	tlsOf := func(cert, key, caFile string) map[string]string {
		return map[string]string{"base_url": "https://bank.example", "tls": "{cert_file: " + cert + ", key_file: " + key + ", ca_file: " + caFile + ", server_name: bank.example}"}
	}
	cfg, err := load(t, dbRedis+providers(provider(tlsOf(client.CertFile, client.KeyFile, ca.File))))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Providers[0].TLS; got.CertFile != client.CertFile || got.KeyFile != client.KeyFile || got.CAFile != ca.File || got.ServerName != "bank.example" {
		t.Fatalf("tls = %+v", got)
	}
	for _, c := range []struct {
		name string
		over map[string]string
		want string
	}{
		{"key of another cert", tlsOf(client.CertFile, other.KeyFile, ca.File), "providers[0].tls.key_file " + other.KeyFile + ": is not the key of tls.cert_file " + client.CertFile + ", or does not parse: name the key the certificate was issued for"},
		{"missing cert", tlsOf(filepath.Join(dir, "none.pem"), client.KeyFile, ca.File), "providers[0].tls.cert_file " + filepath.Join(dir, "none.pem") + ": no such file or directory: name the PEM file of the client certificate the bank issued"},
		{"cert not PEM", tlsOf(garbage, client.KeyFile, ca.File), "providers[0].tls.cert_file " + garbage + ": holds no PEM certificate: name the PEM file of the client certificate"},
		{"key not PEM", tlsOf(client.CertFile, garbage, ca.File), "providers[0].tls.key_file " + garbage + ": holds no PEM private key: name the PEM file of tls.cert_file's private key"},
		{"ca does not parse", tlsOf(client.CertFile, client.KeyFile, brokenCA), "providers[0].tls.ca_file " + brokenCA + ": holds no certificate that parses: name the PEM file of the CA"},
		{"ca not PEM", tlsOf(client.CertFile, client.KeyFile, garbage), "providers[0].tls.ca_file " + garbage + ": holds no PEM certificate: name the PEM file of the CA"},
		{"cert without key", map[string]string{"base_url": "https://bank.example", "tls": "{cert_file: " + client.CertFile + "}"}, "providers[0].tls.cert_file and tls.key_file go together: set both, or neither"},
		{"tls over http", map[string]string{"tls": "{ca_file: " + ca.File + "}"}, `providers[0].tls is set but base_url "http://127.0.0.1:8181" is not https://`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(t, dbRedis+providers(provider(c.over)))
			wantErrors(t, err, c.want)
			if err != nil && strings.Contains(err.Error(), strings.TrimSpace(string(keyPEM))[40:80]) {
				t.Errorf("error shows key material: %v", err)
			}
		})
	}
}

// A command that calls no bank (settle migrate, serve --role web) loads
// without the providers' secrets and their files, and settle migrate
// without Redis: each component of a deployment gets only its own secrets.
// What is set is still checked, and a command that needs them still
// refuses their absence.
func TestLoadForACommandThatCallsNoBank(t *testing.T) {
	t.Parallel()
	db := "database: {url: \"postgres://settle@db.internal:5432/settle\"}\n"
	for name, p := range map[string]string{
		"no token":             provider(map[string]string{"token": "-"}),
		"token file not there": provider(map[string]string{"token": "-", "token_file": "/run/secrets/missing-token"}),
		"no client secret":     provider(with(oauthKeys, map[string]string{"client_secret": "-"})),
		"TLS files not there":  provider(map[string]string{"tls": "{cert_file: /run/missing.crt, key_file: /run/missing.key}"}),
	} {
		path := writeFile(t, "settle.yaml", db+providers(p))
		if _, err := LoadFor(path, nil, Uses{NoRedis: true, NoBanks: true}); err != nil {
			t.Errorf("%s, settle migrate: %v", name, err)
		}
		if _, err := LoadFor(path, nil, Uses{NoBanks: true}); err == nil || !strings.Contains(err.Error(), "redis.url is required") {
			t.Errorf("%s, without Redis for a command that uses it: err = %v", name, err)
		}
		if _, err := Load(path, nil); err == nil {
			t.Errorf("%s: Load accepted it", name)
		}
	}
	path := writeFile(t, "settle.yaml", db+"redis: {url: \"http://nope\"}\n"+
		providers(provider(with(oauthKeys, map[string]string{"client_secret": "-", "client_id": "\"a b\""}))))
	_, err := LoadFor(path, nil, Uses{NoRedis: true, NoBanks: true})
	wantErrors(t, err, "redis.url", "client_id")
}
