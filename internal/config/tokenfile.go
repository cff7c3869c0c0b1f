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

// secretFile is a secret the configuration may give in a file instead: at
// is where it sits ("providers[0]"), name its key ("token"), file the
// value of its name_file key.
type secretFile struct {
	at, name, file string
	secret         *Secret
}

// secretFiles lists the secrets that may come from files: the banks'
// (token, client_secret) when banks, the Slack app's (app_token,
// signing_secret) when slack.
func (c *Config) secretFiles(banks, slack bool) []secretFile {
	var out []secretFile
	if banks {
		for i := range c.Providers {
			pc := &c.Providers[i]
			at := fmt.Sprintf("providers[%d]", i)
			out = append(out, secretFile{at, "token", pc.TokenFile, &pc.Token},
				secretFile{at, "client_secret", pc.ClientSecretFile, &pc.ClientSecret})
		}
	}
	if slack {
		ic := &c.Notify.Slack.Interactive
		const at = "notify.slack.interactive"
		out = append(out, secretFile{at, "app_token", ic.AppTokenFile, &ic.AppToken},
			secretFile{at, "signing_secret", ic.SigningSecretFile, &ic.SigningSecret})
	}
	return out
}

// readSecretFiles sets each secret whose file is named from that file, read
// relative to dir (the config file's directory). A secret may be set or its
// file, not both. Messages name the key and the file, never what it holds.
func readSecretFiles(files []secretFile, dir string) []error {
	var errs []error
	for _, f := range files {
		if f.file == "" {
			continue
		}
		if *f.secret != "" {
			errs = append(errs, fmt.Errorf("config: %s: set %s or %s_file, not both", f.at, f.name, f.name))
			continue
		}
		tok, err := readToken(f.file, dir)
		if err != nil {
			errs = append(errs, fmt.Errorf("config: %s.%s_file %q: %w", f.at, f.name, f.file, err))
			continue
		}
		*f.secret = Secret(tok)
	}
	return errs
}

// readToken reads the secret in file name, relative to dir; its errors say
// what to do.
func readToken(name, dir string) (string, error) {
	if !filepath.IsAbs(name) {
		name = filepath.Join(dir, name)
	}
	f, err := os.Open(name)
	if err != nil {
		return "", fmt.Errorf("%w: fix the path (a relative one is read from the config file's directory) or the file's permissions", pathless(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	switch {
	case err != nil:
		return "", errors.New("cannot be read: name a regular file the daemon may read")
	case len(b) > maxTokenFile:
		return "", errors.New("is larger than 64 KiB: name the file that holds only the secret")
	}
	tok := strings.TrimRight(string(b), "\r\n")
	if tok == "" {
		return "", errors.New("is empty: write the secret into it")
	}
	return tok, nil
}

// pathless drops the path of a *fs.PathError: the messages name the key
// and the file already.
func pathless(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
