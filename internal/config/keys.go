package config

import (
	"reflect"
	"strings"
	"time"
)

var (
	durationType = reflect.TypeFor[time.Duration]()
	secretType   = reflect.TypeFor[Secret]()
	configType   = reflect.TypeFor[Config]()
	providerType = reflect.TypeFor[ProviderConfig]()
)

// keyOf returns the configuration key of a struct field.
func keyOf(f reflect.StructField) string { return f.Tag.Get("koanf") }

// fieldByKey returns the index of the field of struct type t whose key is key.
func fieldByKey(t reflect.Type, key string) (int, bool) {
	for i := range t.NumField() {
		if keyOf(t.Field(i)) == key {
			return i, true
		}
	}
	return 0, false
}

// isSection reports whether values of t are mappings of further keys.
func isSection(t reflect.Type) bool {
	return t.Kind() == reflect.Struct
}

// keyPaths returns every key below struct type t, sections and scalars,
// prefixed by prefix. Lists (providers) are named but not entered.
func keyPaths(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		path := join(prefix, keyOf(f))
		out = append(out, path)
		if isSection(f.Type) {
			out = append(out, keyPaths(f.Type, path)...)
		}
	}
	return out
}

// scalarKeys returns the keys below struct type t that hold a single value,
// leaving out sections and lists.
func scalarKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		path := join(prefix, keyOf(f))
		switch {
		case isSection(f.Type):
			out = append(out, scalarKeys(f.Type, path)...)
		case f.Type.Kind() != reflect.Slice:
			out = append(out, path)
		}
	}
	return out
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// suggest returns the candidate closest to name, or "" if none is close
// enough to be a likely typo. A candidate whose last segment is name (a key
// written at the wrong level) also counts.
func suggest(name string, candidates []string) string {
	if len(name) > 100 {
		return ""
	}
	best, bestDist := "", max(3, len(name)/3+1)
	for _, c := range candidates {
		if d := distance(name, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	if best != "" {
		return best
	}
	for _, c := range candidates {
		if strings.HasSuffix(c, "."+name) {
			return c
		}
	}
	return ""
}

// distance is the Levenshtein edit distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
