package config

import (
	"fmt"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// decoder copies the loaded key tree into a Config, refusing unknown keys and
// values of the wrong type. It keeps going after a problem so that all of them
// are reported together.
type decoder struct {
	file   string            // the config file, for messages; "" if none
	origin map[string]string // key path -> the environment variable that set it
	set    map[string]bool   // key paths that were given a value
	errs   []error
}

// decodeStruct decodes the mapping raw into the struct v, whose keys are
// below prefix.
func (d *decoder) decodeStruct(raw map[string]any, prefix string, v reflect.Value) {
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		path := join(prefix, key)
		i, ok := fieldByKey(v.Type(), key)
		if !ok {
			d.unknown(path)
			continue
		}
		d.decodeValue(raw[key], path, v.Field(i))
	}
}

// decodeValue decodes one value into fv. A null value leaves the default.
func (d *decoder) decodeValue(val any, path string, fv reflect.Value) {
	if val == nil {
		return
	}
	t := fv.Type()
	switch {
	case t == durationType:
		d.decodeDuration(val, path, fv)
	case isSection(t):
		m, ok := val.(map[string]any)
		if !ok {
			d.failShape(path, val, "must be a mapping of keys")
			return
		}
		d.decodeStruct(m, path, fv)
	case t.Kind() == reflect.Slice:
		d.decodeList(val, path, fv)
	case t.Kind() == reflect.String:
		s, ok := val.(string)
		if !ok {
			d.failShape(path, val, "must be a string (quote it)")
			return
		}
		fv.SetString(s)
		d.set[path] = true
	case t.Kind() == reflect.Bool:
		d.decodeBool(val, path, fv)
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		d.decodeInt(val, path, fv)
	default:
		panic(fmt.Sprintf("config: key %s has unsupported type %s", path, t))
	}
}

func (d *decoder) decodeList(val any, path string, fv reflect.Value) {
	items, ok := val.([]any)
	if !ok {
		d.failShape(path, val, "must be a list (each item starts with -)")
		return
	}
	d.set[path] = true
	if len(items) == 0 { // an empty list is no list: the default's nil
		fv.Set(reflect.Zero(fv.Type()))
		return
	}
	list := reflect.MakeSlice(fv.Type(), 0, len(items))
	for i, item := range items {
		itemPath := fmt.Sprintf("%s[%d]", path, i)
		elem := reflect.New(fv.Type().Elem()).Elem()
		if m, ok := item.(map[string]any); ok {
			d.decodeStruct(m, itemPath, elem)
		} else {
			d.failShape(itemPath, item, "must be a mapping of keys")
		}
		list = reflect.Append(list, elem)
	}
	fv.Set(list)
	d.set[path] = true
}

func (d *decoder) decodeDuration(val any, path string, fv reflect.Value) {
	s, ok := val.(string)
	dur, err := time.ParseDuration(strings.TrimSpace(s))
	if !ok || err != nil {
		d.fail(path, val, "not a duration such as 30s")
		return
	}
	fv.SetInt(int64(dur))
	d.set[path] = true
}

func (d *decoder) decodeBool(val any, path string, fv reflect.Value) {
	b, ok := val.(bool)
	if s, isString := val.(string); isString {
		var err error
		b, err = strconv.ParseBool(strings.TrimSpace(s))
		ok = err == nil
	}
	if !ok {
		d.fail(path, val, "not true or false")
		return
	}
	fv.SetBool(b)
	d.set[path] = true
}

func (d *decoder) decodeInt(val any, path string, fv reflect.Value) {
	n, ok := toInt64(val)
	if !ok || fv.OverflowInt(n) {
		d.fail(path, val, "not a whole number")
		return
	}
	fv.SetInt(n)
	d.set[path] = true
}

// toInt64 converts a YAML integer, or a string holding one (as environment
// values are), to int64.
func toInt64(val any) (int64, bool) {
	switch n := val.(type) {
	case int:
		return int64(n), true
	case int64:
		return n, true
	case uint64:
		return int64(n), n <= math.MaxInt64
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
		return i, err == nil
	}
	return 0, false
}

// fail records a scalar value of the wrong form at path, showing the value
// unless the key holds a secret.
func (d *decoder) fail(path string, val any, what string) {
	if isSecretKey(path) {
		d.failShape(path, val, what)
		return
	}
	d.errs = append(d.errs, fmt.Errorf("config: %s %s%s: %s", path, show(val), d.from(path), what))
}

// failShape records a value of the wrong type at path, naming its type but
// not showing it: a secret written at the wrong level must not be echoed.
func (d *decoder) failShape(path string, val any, what string) {
	d.errs = append(d.errs, fmt.Errorf("config: %s%s: %s, not %s", path, d.from(path), what, kindOf(val)))
}

// from names the environment variable that set path, if one did.
func (d *decoder) from(path string) string {
	if env, ok := d.origin[path]; ok {
		return " (from " + env + ")"
	}
	return ""
}

// kindOf names the YAML type of a value.
func kindOf(val any) string {
	switch val.(type) {
	case string:
		return "a string"
	case bool:
		return "true or false"
	case int, int64, uint64, float64:
		return "a number"
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("a %T", val)
}

// unknown records a key that is not part of the configuration.
func (d *decoder) unknown(path string) {
	in := ""
	if d.file != "" {
		in = " in " + d.file
	}
	hint := ""
	if s := suggestKey(path); s != "" {
		hint = fmt.Sprintf(" (did you mean %q?)", s)
	}
	d.errs = append(d.errs, fmt.Errorf("config: unknown key %q%s%s", path, in, hint))
}

// lastItem matches the path of the innermost list item a key path is in:
// "providers[0]" of "providers[0].accounts.fe".
var lastItem = regexp.MustCompile(`^(.*\[\d+\])\.`)

// suggestKey returns the known key closest to the unknown key path: among
// the keys of the list item it is in, if any.
func suggestKey(path string) string {
	if m := lastItem.FindStringSubmatch(path); m != nil {
		if t := typeAt(m[1]); t != nil && t.Kind() == reflect.Struct {
			return suggest(path, keyPaths(t, m[1]))
		}
	}
	return suggest(path, keyPaths(configType, ""))
}

// isSecretKey reports whether the key at path holds a Secret.
func isSecretKey(path string) bool { return typeAt(path) == secretType }

var itemIndex = regexp.MustCompile(`\[\d+\]$`)

// typeAt returns the type of the value at a key path such as
// "notify.slack.interactive.users[0].role", or nil for no such key.
func typeAt(path string) reflect.Type {
	t := configType
	for part := range strings.SplitSeq(path, ".") {
		key := itemIndex.ReplaceAllString(part, "")
		if t.Kind() != reflect.Struct {
			return nil
		}
		i, ok := fieldByKey(t, key)
		if !ok {
			return nil
		}
		t = t.Field(i).Type
		if key != part {
			if t.Kind() != reflect.Slice {
				return nil
			}
			t = t.Elem()
		}
	}
	return t
}

// show formats a value for a message, cut short if long.
func show(val any) string {
	switch v := val.(type) {
	case string:
		if len(v) > 60 {
			v = v[:60] + "…"
		}
		return strconv.Quote(v)
	}
	s := fmt.Sprint(val)
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return s
}

// backquoted matches the snippets of input that YAML errors quote.
var backquoted = regexp.MustCompile("`[^`]*`")

// cleanYAMLError returns the text of a read or parse error with any quoted
// input removed, since the input may hold a secret.
// The message is made one line.
func cleanYAMLError(err error) string {
	msg := backquoted.ReplaceAllString(err.Error(), "`…`")
	return strings.Join(strings.Fields(msg), " ")
}
