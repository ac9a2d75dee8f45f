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
	"os"
	"strings"
	"time"
)

// client talks to the hub's operator API, the same API any generated client uses.
type client struct {
	hub   string
	token string
	http  *http.Client
}

// clientFlags adds --hub and --token, defaulting to PULSE_HUB and PULSE_TOKEN.
func clientFlags(fs *flag.FlagSet) func() (*client, error) {
	hub := fs.String("hub", "", "hub URL (default $PULSE_HUB, else http://127.0.0.1:8080)")
	token := fs.String("token", "", "operator API token (default $PULSE_TOKEN)")
	return func() (*client, error) {
		c := &client{hub: *hub, token: *token, http: &http.Client{Timeout: 5 * time.Minute}}
		if c.hub == "" {
			c.hub = os.Getenv("PULSE_HUB")
		}
		if c.hub == "" {
			c.hub = "http://127.0.0.1:8080"
		}
		c.hub = strings.TrimRight(c.hub, "/")
		if c.token == "" {
			c.token = os.Getenv("PULSE_TOKEN")
		}
		if c.token == "" {
			return nil, usagef("no operator token: pass --token or set PULSE_TOKEN (pulse init printed the first one)")
		}
		return c, nil
	}
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

// apiError is an RFC 9457 problem returned by the hub.
type apiError struct {
	Status int    `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Errors []struct {
		Location string `json:"location"`
		Message  string `json:"message"`
	} `json:"errors"`
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

// do sends a JSON request and decodes a JSON answer into out (if not nil).
func (c *client) do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.raw(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// raw sends a request and returns a successful response; a problem answer becomes an *apiError.
func (c *client) raw(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.hub+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, err
		}
		return nil, fmt.Errorf("cannot reach the hub at %s: %w", c.hub, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var p apiError
		if json.Unmarshal(b, &p) != nil || p.Status == 0 {
			p = apiError{Status: resp.StatusCode, Title: strings.TrimSpace(string(b))}
		}
		return nil, &p
	}
	return resp, nil
}

// printJSON writes v indented, for --json.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
