package workflow

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Interpolation: params values, targets and prompt messages may contain ${inputs.NAME}, replaced by
// the execution's input (ints in decimal, bools as true/false). "$${" writes a literal "${"; any other
// "$" is literal. Nothing else can be referenced: a parameter is data the agent validates against its
// catalog, so it must be something the person starting the workflow chose, never a command's output.

// reference is one ${...} found in a string.
type reference struct {
	input    string // the input name
	from, to int    // byte offsets of ${ and after }
}

// scanRefs finds the references in s, or says why s is malformed.
func scanRefs(s string) ([]reference, error) {
	var refs []reference
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			continue
		}
		if strings.HasPrefix(s[i:], "$${") {
			i += 2
			continue
		}
		if !strings.HasPrefix(s[i:], "${") {
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return nil, fmt.Errorf("unclosed ${ at byte %d (write $${ for a literal ${)", i)
		}
		inner := strings.TrimSpace(s[i+2 : i+end])
		name, ok := strings.CutPrefix(inner, "inputs.")
		if !ok || !identRE.MatchString(name) {
			return nil, fmt.Errorf("${%s}: only ${inputs.NAME} can be referenced", inner)
		}
		refs = append(refs, reference{input: name, from: i, to: i + end + 1})
		i += end
	}
	return refs, nil
}

// interpolate replaces every reference with its input's text. Inputs must hold every referenced name
// (Fold fills every declared input, and Validate refuses references to undeclared ones).
func interpolate(s string, inputs map[string]any) (string, error) {
	refs, err := scanRefs(s)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	last := 0
	for _, r := range refs {
		b.WriteString(unescape(s[last:r.from]))
		v, ok := inputs[r.input]
		if !ok {
			return "", fmt.Errorf("no input %q", r.input)
		}
		b.WriteString(inputText(v))
		last = r.to
	}
	b.WriteString(unescape(s[last:]))
	return b.String(), nil
}

func unescape(s string) string { return strings.ReplaceAll(s, "$${", "${") }

func inputText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case bool:
		return strconv.FormatBool(x)
	}
	return fmt.Sprint(v)
}

// coerceInput checks one input value against its type and returns it as string, int64 or bool. It
// takes what JSON decoders and command lines produce: numbers of any Go kind when integral, and text
// ("42", "true") for ints and bools, so `--input count=3` works.
func coerceInput(t InputType, v any) (any, error) {
	switch t {
	case InputString:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want a string, got %T", v)
		}
		if len(s) > MaxInputBytes {
			return nil, fmt.Errorf("%d bytes, more than %d", len(s), MaxInputBytes)
		}
		return s, nil
	case InputInt:
		switch x := v.(type) {
		case int:
			return int64(x), nil
		case int32:
			return int64(x), nil
		case int64:
			return x, nil
		case uint64:
			if x <= math.MaxInt64 {
				return int64(x), nil
			}
		case float64:
			if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
				return int64(x), nil
			}
		case json.Number:
			if n, err := x.Int64(); err == nil {
				return n, nil
			}
		case string:
			if n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64); err == nil {
				return n, nil
			}
		}
		return nil, fmt.Errorf("want a whole number, got %v", v)
	case InputBool:
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			if b, err := strconv.ParseBool(strings.TrimSpace(x)); err == nil {
				return b, nil
			}
		}
		return nil, fmt.Errorf("want true or false, got %v", v)
	}
	return nil, fmt.Errorf("unknown input type %q", t)
}

// ResolveInputs checks the inputs given to start an execution and completes them: every declared
// input present, with its default or its type's zero value; unknown names, wrong types and missing
// required inputs refused. The hub calls it before writing a started event so the caller hears about
// a mistake at once; Fold applies the same rules, so an execution never sees unchecked inputs.
func (d *Definition) ResolveInputs(given map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(d.Inputs))
	var errs []string
	for name := range given {
		if _, ok := d.Inputs[name]; !ok {
			errs = append(errs, fmt.Sprintf("unknown input %q", name))
		}
	}
	for name, in := range d.Inputs {
		v, ok := given[name]
		switch {
		case ok && v != nil:
			c, err := coerceInput(in.Type, v)
			if err != nil {
				errs = append(errs, fmt.Sprintf("input %s: %v", name, err))
				continue
			}
			out[name] = c
		case in.Default != nil:
			out[name] = in.Default
		case in.Required:
			errs = append(errs, fmt.Sprintf("input %s is required", name))
		default:
			out[name] = zeroInput(in.Type)
		}
	}
	if len(errs) > 0 {
		slices.Sort(errs)
		return nil, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return out, nil
}

func zeroInput(t InputType) any {
	switch t {
	case InputInt:
		return int64(0)
	case InputBool:
		return false
	}
	return ""
}
