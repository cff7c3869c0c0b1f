package config

import (
	"reflect"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
)

// Redacted returns the effective configuration, defaults included, as YAML
// with every secret shown as "[redacted]" and the password of every URL
// replaced (postgres://settle:[redacted]@host/db). A token read from a
// token_file is shown as that file.
func (c *Config) Redacted() ([]byte, error) {
	return yaml.Parser().Marshal(redactedMap(reflect.ValueOf(c).Elem()))
}

// redactedMap returns the keys and values of struct v with secrets hidden.
func redactedMap(v reflect.Value) map[string]any {
	out := make(map[string]any, v.NumField())
	for i := range v.NumField() {
		f, fv := v.Type().Field(i), v.Field(i)
		key := keyOf(f)
		switch {
		case f.Type == secretType:
			out[key] = redactSecret(fv.String(), f.Tag.Get("redact") == "url")
		case f.Type == durationType:
			out[key] = time.Duration(fv.Int()).String()
		case isSection(f.Type):
			out[key] = redactedMap(fv)
		case f.Type.Kind() == reflect.Slice:
			out[key] = redactedList(fv)
		default:
			out[key] = fv.Interface()
		}
	}
	// A secret read from a file (token_file, app_token_file) is shown as
	// that file; one set otherwise hides its empty file key.
	for i := range v.NumField() {
		f := v.Type().Field(i)
		key := keyOf(f)
		if file, ok := out[key+"_file"]; ok && f.Type == secretType {
			if file != "" {
				delete(out, key)
			} else {
				delete(out, key+"_file")
			}
		}
	}
	return out
}

func redactedList(v reflect.Value) []any {
	out := make([]any, v.Len())
	for i := range v.Len() {
		out[i] = redactedMap(v.Index(i))
	}
	return out
}

func redactSecret(s string, isURL bool) string {
	switch {
	case s == "":
		return ""
	case isURL:
		return RedactURL(s)
	default:
		return redacted
	}
}
