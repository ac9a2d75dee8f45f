package cli

import (
	"bytes"
	"testing"
)

func TestPrintAnswerDropsTheSchemaLink(t *testing.T) {
	for _, c := range []struct{ name, body, want string }{
		{"link first", `{"$schema":"http://h/schemas/X.json","b":1,"a":"x<y"}`, "{\n  \"b\": 1,\n  \"a\": \"x\\u003cy\"\n}\n"},
		{"link alone", `{"$schema":"http://h/schemas/X.json"}`, "{}\n"},
		{"spaced", "{ \"$schema\" : \"l\" ,\n \"a\": [] }", "{\n  \"a\": []\n}\n"},
		{"no link", `{"a":{"$schema":"kept below the top"}}`, "{\n  \"a\": {\n    \"$schema\": \"kept below the top\"\n  }\n}\n"},
		{"not an object", `[1,2]`, "[\n  1,\n  2\n]\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := printAnswer(&b, []byte(c.body)); err != nil {
				t.Fatal(err)
			}
			if b.String() != c.want {
				t.Errorf("got %q, want %q", b.String(), c.want)
			}
		})
	}
}

func TestAPIErrorIsOneLine(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"detail", 404, `{"status":404,"title":"Not Found","detail":"no workflow \"x\""}`, `no workflow "x" (HTTP 404)`},
		{"located", 422, `{"status":422,"title":"Unprocessable Entity","detail":"validation failed","errors":[{"location":"body.uses","message":"expected number >= 0"}]}`, "validation failed; body.uses: expected number >= 0 (HTTP 422)"},
		{"located, already said", 422, `{"status":422,"detail":"refused: 3:11: unknown step type","errors":[{"location":"body.source","message":"3:11: unknown step type"}]}`, "refused: 3:11: unknown step type (HTTP 422)"},
		{"title only", 401, `{"status":401,"title":"Unauthorized"}`, "Unauthorized (HTTP 401)"},
		{"not a problem", 502, "<html>bad gateway</html>\n", "<html>bad gateway</html> (HTTP 502)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := problem(c.status, []byte(c.body)).Error(); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}
