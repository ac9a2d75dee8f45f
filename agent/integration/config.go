package integration

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// DecodeConfig decodes a raw TOML table into a typed struct strictly, so a misspelt key is an error
// naming the key instead of a setting silently ignored on the most privileged program on the host. into
// must be a non-nil pointer; fields use `toml:"name"` tags. A nil or empty raw leaves into untouched, so
// callers set defaults before decoding.
func DecodeConfig(raw map[string]any, into any) error {
	if v := reflect.ValueOf(into); v.Kind() != reflect.Pointer || v.IsNil() {
		return fmt.Errorf("decode config: want a non-nil pointer, got %T", into)
	}
	if len(raw) == 0 {
		return nil
	}
	// The raw table came from a TOML document; writing it back out and decoding it with the strict
	// decoder reuses go-toml's type rules (integers, durations via TextUnmarshaler, nested tables)
	// instead of a second, hand-written set of them.
	doc, err := toml.Marshal(raw)
	if err != nil {
		return fmt.Errorf("decode config: %w", err)
	}
	dec := toml.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		return describeDecodeError(err)
	}
	return nil
}

// goFieldRE matches go-toml's mention of the Go struct field, which means nothing to an operator.
var goFieldRE = regexp.MustCompile(`into struct field \S+ of type `)

// describeDecodeError names keys rather than positions: positions would point into the re-encoded
// document, which the operator never wrote.
func describeDecodeError(err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		keys := make([]string, 0, len(strict.Errors))
		for _, e := range strict.Errors {
			keys = append(keys, strings.Join(e.Key(), "."))
		}
		if len(keys) == 1 {
			return fmt.Errorf("unknown key %q", keys[0])
		}
		return fmt.Errorf("unknown keys %q", keys)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) && len(de.Key()) > 0 {
		msg := goFieldRE.ReplaceAllString(strings.TrimPrefix(de.Error(), "toml: "), "into ")
		return fmt.Errorf("key %q: %s", strings.Join(de.Key(), "."), msg)
	}
	return fmt.Errorf("decode config: %s", strings.TrimPrefix(err.Error(), "toml: "))
}
