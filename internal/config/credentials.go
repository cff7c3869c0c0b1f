package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// validateCredentials checks that a provider has exactly one kind of
// credentials, a static token or complete OAuth client credentials; with
// u.NoBanks the secret may be missing. The messages never show token or
// client_secret.
func (pc *ProviderConfig) validateCredentials(p *problems, key string, u Uses) {
	env := providerEnvName(pc.Name)
	static := pc.Token != "" || pc.TokenFile != ""
	oauth := pc.TokenURL != "" || pc.ClientID != "" || pc.ClientSecret != "" || pc.ClientSecretFile != "" || pc.Scopes != ""
	switch {
	case !static && !oauth && u.NoBanks:
		return // a command that calls no bank
	case !static && !oauth:
		p.add("%s has no credentials: set token (or token_file, SETTLE_PROVIDERS_%s_TOKEN), or OAuth token_url, client_id and client_secret", key, env)
		return
	case static && oauth:
		p.add("%s: set token or OAuth client credentials (token_url, client_id, client_secret), not both", key)
		return
	case static:
		return
	}
	if pc.TokenURL == "" {
		p.add("%s.token_url is required with client_id and client_secret: the bank's OAuth token endpoint", key)
	} else if !secureURL(pc.TokenURL) {
		p.add("%s.token_url %q: must be an https:// URL without a user or password (http:// only to this machine)", key, showURL(pc.TokenURL))
	}
	switch {
	case pc.ClientID == "":
		p.add("%s.client_id is required with token_url", key)
	case !printable(pc.ClientID):
		p.add("%s.client_id %q: must hold no spaces or control characters", key, pc.ClientID)
	}
	switch {
	case pc.ClientSecret == "" && pc.ClientSecretFile == "" && !u.NoBanks:
		p.add("%s.client_secret is required with token_url: set client_secret, client_secret_file or SETTLE_PROVIDERS_%s_CLIENT_SECRET", key, env)
	case pc.ClientSecret != "" && !printable(pc.ClientSecret.Reveal()):
		p.add("%s.client_secret: must hold no spaces or control characters", key)
	}
	for _, s := range strings.Fields(pc.Scopes) {
		if strings.ContainsAny(s, `"\`) || !printable(s) {
			p.add("%s.scopes %q: must be scope names separated by spaces (RFC 6749 3.3), such as \"inquiry transfer\"", key, pc.Scopes)
			break
		}
	}
}

// printable reports whether s holds only printable ASCII without spaces.
func printable(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r >= 0x7f })
}

// checkTLSFiles resolves each provider's tls paths against dir (the config
// file's directory) and checks that the files read, that the key is the
// certificate's and that the CA bundle parses. Messages name the key and
// the file, never what it holds.
func (c *Config) checkTLSFiles(dir string) []error {
	var errs []error
	for i := range c.Providers {
		pc := &c.Providers[i]
		if !pc.HasTLS() {
			continue
		}
		key := fmt.Sprintf("config: providers[%d]", i)
		t := &pc.TLS
		for _, f := range []*string{&t.CertFile, &t.KeyFile, &t.CAFile} {
			if *f != "" && !filepath.IsAbs(*f) {
				*f = filepath.Join(dir, *f)
			}
		}
		if u, err := url.Parse(pc.BaseURL); err == nil && u.Scheme != "https" {
			errs = append(errs, fmt.Errorf("%s.tls is set but base_url %q is not https://", key, showURL(pc.BaseURL)))
		}
		if (t.CertFile == "") != (t.KeyFile == "") {
			errs = append(errs, fmt.Errorf("%s.tls.cert_file and tls.key_file go together: set both, or neither", key))
		} else if t.CertFile != "" {
			errs = append(errs, checkKeyPair(key, t.CertFile, t.KeyFile)...)
		}
		if t.CAFile != "" {
			if b, err := readPEM(t.CAFile, "CERTIFICATE", "certificate"); err != nil {
				errs = append(errs, fmt.Errorf("%s.tls.ca_file %s: %w: name the PEM file of the CA that signs the bank's server certificate", key, t.CAFile, err))
			} else if !x509.NewCertPool().AppendCertsFromPEM(b) {
				errs = append(errs, fmt.Errorf("%s.tls.ca_file %s: holds no certificate that parses: name the PEM file of the CA that signs the bank's server certificate", key, t.CAFile))
			}
		}
	}
	return errs
}

// checkKeyPair checks the certificate and key files each on its own, then
// that the key is the certificate's.
func checkKeyPair(key, certFile, keyFile string) []error {
	var errs []error
	certPEM, err := readPEM(certFile, "CERTIFICATE", "certificate")
	if err != nil {
		errs = append(errs, fmt.Errorf("%s.tls.cert_file %s: %w: name the PEM file of the client certificate the bank issued", key, certFile, err))
	}
	keyPEM, err := readPEM(keyFile, "PRIVATE KEY", "private key")
	if err != nil {
		errs = append(errs, fmt.Errorf("%s.tls.key_file %s: %w: name the PEM file of tls.cert_file's private key", key, keyFile, err))
	}
	if len(errs) > 0 {
		return errs
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		// crypto/tls's messages name no key material; keep ours plainer.
		return []error{fmt.Errorf("%s.tls.key_file %s: is not the key of tls.cert_file %s, or does not parse: name the key the certificate was issued for", key, keyFile, certFile)}
	}
	return nil
}

// readPEM reads file and checks that it holds a PEM block whose type ends
// with typ (what names it in the error).
func readPEM(file, typ, what string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, pathless(err)
	}
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("holds no PEM %s", what)
		}
		if strings.HasSuffix(block.Type, typ) {
			return b, nil
		}
	}
}
