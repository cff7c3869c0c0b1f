package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// maxTokenFile is the largest token file read; anything bigger is surely the
// wrong file.
const maxTokenFile = 64 << 10

// readTokenFiles sets the token of each provider that names a token_file,
// and the client_secret of each that names a client_secret_file, read
// relative to dir (the config file's directory). A provider may have a
// secret or its file, not both.
func (c *Config) readTokenFiles(dir string) []error {
	var errs []error
	for i := range c.Providers {
		pc := &c.Providers[i]
		for _, f := range []struct {
			key, file string
			secret    *Secret
		}{{"token", pc.TokenFile, &pc.Token}, {"client_secret", pc.ClientSecretFile, &pc.ClientSecret}} {
			if err := readSecretFile(f.key, f.file, dir, f.secret); err != nil {
				errs = append(errs, fmt.Errorf("config: providers[%d]%s", i, err))
			}
		}
	}
	return errs
}

// readSlackFiles sets the Slack app's app_token and signing_secret from
// their files, if named, read relative to dir. A secret may be set or its
// file, not both.
func (c *Config) readSlackFiles(dir string) []error {
	var errs []error
	ic := &c.Notify.Slack.Interactive
	for _, f := range []struct {
		key, file string
		secret    *Secret
	}{{"app_token", ic.AppTokenFile, &ic.AppToken}, {"signing_secret", ic.SigningSecretFile, &ic.SigningSecret}} {
		if err := readSecretFile(f.key, f.file, dir, f.secret); err != nil {
			errs = append(errs, fmt.Errorf("config: notify.slack.interactive%s", err))
		}
	}
	return errs
}

// readSecretFile sets *secret from the file named by key_file, if any.
func readSecretFile(key, file, dir string, secret *Secret) error {
	if file == "" {
		return nil
	}
	if *secret != "" {
		return fmt.Errorf(": set %s or %s_file, not both", key, key)
	}
	tok, err := readToken(file, dir)
	if err != nil {
		return fmt.Errorf(".%s_file %q: %w", key, file, err)
	}
	*secret = Secret(tok)
	return nil
}

func readToken(name, dir string) (string, error) {
	if !filepath.IsAbs(name) {
		name = filepath.Join(dir, name)
	}
	f, err := os.Open(name)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	switch {
	case err != nil:
		return "", errors.New("cannot be read")
	case len(b) > maxTokenFile:
		return "", errors.New("is larger than 64 KiB; is it the right file?")
	}
	tok := strings.TrimRight(string(b), "\r\n")
	if tok == "" {
		return "", errors.New("is empty")
	}
	return tok, nil
}
