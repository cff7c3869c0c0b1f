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
// read relative to dir (the config file's directory). A provider may have a
// token or a token_file, not both.
func (c *Config) readTokenFiles(dir string) []error {
	var errs []error
	for i := range c.Providers {
		pc := &c.Providers[i]
		if pc.TokenFile == "" {
			continue
		}
		if pc.Token != "" {
			errs = append(errs, fmt.Errorf("config: providers[%d]: set token or token_file, not both", i))
			continue
		}
		tok, err := readToken(pc.TokenFile, dir)
		if err != nil {
			errs = append(errs, fmt.Errorf("config: providers[%d].token_file %q: %w", i, pc.TokenFile, err))
			continue
		}
		pc.Token = Secret(tok)
	}
	return errs
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
