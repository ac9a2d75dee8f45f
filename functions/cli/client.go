package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	api "github.com/pulsehq/pulse/openapi/client"
)

// client talks to the hub's operator API through the client generated from the committed OpenAPI
// document, so the CLI can only ask for what the hub documents.
type client struct {
	hub string
	api *api.ClientWithResponses
	// last is the request sent most recently, to name it when its answer cannot be decoded (the
	// generated client returns decoding errors without it). Atomic: a command may read outputs in
	// parallel, or follow a stream while it fetches; decoded answers come one at a time.
	last atomic.Pointer[http.Request]
}

// clientFlags adds --hub and --token, defaulting to PULSE_HUB and PULSE_TOKEN.
func clientFlags(fs *flag.FlagSet) func() (*client, error) {
	hub := fs.String("hub", "", "hub URL (default $PULSE_HUB, else http://127.0.0.1:8080)")
	token := fs.String("token", "", "operator API token (default $PULSE_TOKEN)")
	return func() (*client, error) {
		c := &client{hub: *hub}
		if c.hub == "" {
			c.hub = os.Getenv("PULSE_HUB")
		}
		if c.hub == "" {
			c.hub = "http://127.0.0.1:8080"
		}
		c.hub = strings.TrimRight(c.hub, "/")
		tok := *token
		if tok == "" {
			tok = os.Getenv("PULSE_TOKEN")
		}
		if tok == "" {
			return nil, usagef("no operator token: pass --token or set PULSE_TOKEN (pulse init printed the first one)")
		}
		var err error
		c.api, err = api.NewClientWithResponses(c.hub,
			api.WithHTTPClient(httpClient()),
			api.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
				req.Header.Set("Authorization", "Bearer "+tok)
				c.last.Store(req)
				return nil
			}))
		if err != nil {
			return nil, usagef("--hub %s: %v", c.hub, err)
		}
		return c, nil
	}
}

// answerTimeout bounds how long the hub may take to start answering. It is not a limit on the whole
// exchange: event streams (`workflow watch`, `run --wait`) last as long as what they follow.
const answerTimeout = 5 * time.Minute

func httpClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = answerTimeout
	tr.MaxIdleConnsPerHost = outputFetchers // keep the parallel output reads' connections for the next
	return &http.Client{Transport: tr}
}

// clientCommand parses a client command's flags (its own plus --hub and --token) and connects: the
// preamble every operator command shares.
func clientCommand(fs *flag.FlagSet, args []string) (*client, error) {
	connect := clientFlags(fs)
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	return connect()
}

// apiError is an RFC 9457 problem returned by the hub, printed on one line: the detail, each problem
// the hub located, and the HTTP status.
type apiError struct {
	api.ErrorModel
}

func (e *apiError) Error() string {
	msg := e.Detail
	if msg == "" {
		msg = e.Title
	}
	// Point at each problem the hub located, unless the detail already says it.
	for _, d := range e.Errors {
		if d.Location != "" && !strings.Contains(msg, d.Message) {
			msg += "; " + d.Location + ": " + d.Message
		}
	}
	return fmt.Sprintf("%s (HTTP %d)", msg, e.Status)
}

// problem reads a failed answer as a problem; a body that is not one (a proxy's error page) becomes
// the title, so the user still sees what came back.
func problem(status int, body []byte) *apiError {
	var p apiError
	if json.Unmarshal(body, &p.ErrorModel) != nil || p.Status == 0 {
		p = apiError{api.ErrorModel{Status: int64(status), Title: strings.TrimSpace(string(body))}}
	}
	return &p
}

// response is what every ClientWithResponses answer offers.
type response interface {
	StatusCode() int
	GetBody() []byte
}

// check turns the outcome of a generated call into the CLI's errors: an unreachable hub is named, a
// problem answer becomes an *apiError, an answer that did not decode names the request.
func (c *client) check(resp response, err error) error {
	if err != nil {
		var ue *url.Error
		switch {
		case errors.Is(err, context.Canceled):
			return err
		case errors.As(err, &ue):
			return fmt.Errorf("cannot reach the hub at %s: %w", c.hub, err)
		case c.last.Load() != nil:
			// The generated client only fails after sending when it reads or decodes the answer.
			last := c.last.Load()
			return fmt.Errorf("%s %s: decode answer: %w", last.Method, last.URL.RequestURI(), err)
		default:
			return err
		}
	}
	if code := resp.StatusCode(); code >= 300 {
		return problem(code, resp.GetBody())
	}
	return nil
}

// answer checks a generated call and returns its decoded success body, picked by body (a method
// expression such as (*api.GetCommandResponse).GetJSON200).
func answer[R response, T any](c *client, resp R, err error, body func(R) *T) (*T, error) {
	if err := c.check(resp, err); err != nil {
		return nil, err
	}
	if v := body(resp); v != nil {
		return v, nil
	}
	what := "the request"
	if last := c.last.Load(); last != nil {
		what = last.Method + " " + last.URL.RequestURI()
	}
	return nil, fmt.Errorf("%s: unexpected answer (HTTP %d) that the API does not document", what, resp.StatusCode())
}

// stream checks a raw response of the generated Client (streams and output bytes, read as they come)
// and returns it open when it succeeded; a problem answer becomes an *apiError.
func (c *client) stream(resp *http.Response, err error) (*http.Response, error) {
	if err != nil {
		return nil, c.check(nil, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, problem(resp.StatusCode, b)
	}
	return resp, nil
}

// printJSON writes v indented, for --json.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printAnswer prints the hub's JSON answer for --json: every field the hub sent, in its order,
// indented as printJSON does, without the "$schema" link the API adds in front of every body. The
// answer as sent, not the generated type re-encoded, so a CLI built from an older document still
// shows fields a newer hub adds.
func printAnswer(w io.Writer, body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err == nil && tok == json.Delim('{') {
		if key, err := dec.Token(); err == nil && key == "$schema" {
			var link json.RawMessage
			if err := dec.Decode(&link); err == nil {
				rest := bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n")
				body = append([]byte("{"), bytes.TrimPrefix(rest, []byte(","))...)
			}
		}
	}
	return printJSON(w, json.RawMessage(body))
}
