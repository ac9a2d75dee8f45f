package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	api "github.com/pulsehq/pulse/openapi/client"
)

// streamEvent is one server-sent event as the hub writes them: an optional id, a name and one line
// of JSON data.
type streamEvent struct {
	ID, Name string
	Data     []byte
}

// commandUpdate is the data of a `command` event of a command's stream (GET /v1/commands/{id}/events).
type commandUpdate struct {
	Done    bool             `json:"done"`
	Message string           `json:"message"`
	Counts  map[string]int64 `json:"counts"`
}

// How a dropped command stream is resumed: after a pause that starts at resumeFirst and doubles up
// to resumeMax while reconnecting fails, and not after resumeGiveUp without an event. A restarting
// hub is back within seconds; a minute of failures is an outage the operator should hear about.
const (
	resumeFirst  = 100 * time.Millisecond
	resumeMax    = 5 * time.Second
	resumeGiveUp = time.Minute
)

// followCommand reads the event stream of command id until the hub says every target is final (a
// `command` event with done), passing each `agent` and `command` event to on, and returns nil then
// — at once, without waiting for the hub to close the stream. A stream that drops (the connection
// lost, the hub restarting, a proxy's 5xx, an `error` event) is opened again with the last event's id
// as Last-Event-ID, so agent states already seen are not sent twice. A problem the hub answers with
// 4xx (the command is gone, the token revoked) ends the wait at once. An error from on ends it too.
func followCommand(ctx context.Context, c *client, id string, on func(streamEvent) error) error {
	lastID := ""
	pause := resumeFirst
	var failingSince time.Time
	for {
		progressed, done, err := readCommandStream(ctx, c, id, lastID, func(ev streamEvent) error {
			if ev.ID != "" {
				lastID = ev.ID
			}
			return on(ev)
		})
		var fatal fatalStreamError
		switch {
		case done:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &fatal):
			return fatal.error
		}
		if progressed {
			pause, failingSince = resumeFirst, time.Time{}
		}
		if failingSince.IsZero() {
			failingSince = time.Now()
		}
		if err == nil {
			err = errors.New("the hub ended the stream before every target was final")
		}
		if time.Since(failingSince) > resumeGiveUp {
			return fmt.Errorf("command %s: event stream lost for %s: %w", id, resumeGiveUp, err)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		pause = min(2*pause, resumeMax)
	}
}

// fatalStreamError marks a failure that opening the stream again cannot mend.
type fatalStreamError struct{ error }

// readCommandStream reads one connection of a command's stream. progressed says whether any agent or
// command event came; done whether the hub said every target is final. err is why the stream ended
// early, wrapped in fatalStreamError when retrying cannot help; nil with !done is a stream the hub
// closed before the end.
func readCommandStream(ctx context.Context, c *client, id, lastID string, on func(streamEvent) error) (progressed, done bool, err error) {
	resp, err := c.stream(c.api.StreamCommand(ctx, id, &api.StreamCommandParams{LastEventID: lastID}))
	if err != nil {
		if p := (*apiError)(nil); errors.As(err, &p) && p.Status >= 400 && p.Status < 500 && p.Status != http.StatusRequestTimeout && p.Status != http.StatusTooManyRequests {
			return false, false, fatalStreamError{err}
		}
		return false, false, err
	}
	defer resp.Body.Close()
	err = readEvents(resp.Body, func(ev streamEvent) (bool, error) {
		switch ev.Name {
		case "error": // the hub failed mid-stream (its store, say): say why if it keeps failing
			var msg string
			if json.Unmarshal(ev.Data, &msg) != nil {
				msg = string(ev.Data)
			}
			return true, fmt.Errorf("the hub: %s", msg)
		case "command":
			var u commandUpdate
			if err := json.Unmarshal(ev.Data, &u); err != nil {
				return true, fatalStreamError{fmt.Errorf("command %s: unreadable event from the hub: %w", id, err)}
			}
			done = u.Done
		case "agent":
		default:
			return false, nil // a newer hub's event this CLI does not know
		}
		progressed = true
		if err := on(ev); err != nil {
			return true, fatalStreamError{err}
		}
		return done, nil
	})
	return progressed, done, err
}

// readEvents parses server-sent events from r, calling on for each complete one until on says stop,
// on fails, or r ends (a read error included: the caller resumes the stream).
func readEvents(r io.Reader, on func(streamEvent) (stop bool, err error)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var ev streamEvent
	var data []string
	for sc.Scan() {
		line := sc.Text()
		if line == "" { // the blank line that ends an event
			if len(data) > 0 || ev.Name != "" {
				ev.Data = []byte(strings.Join(data, "\n"))
				if stop, err := on(ev); stop || err != nil {
					return err
				}
			}
			ev, data = streamEvent{}, nil
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.ID = value
		case "event":
			ev.Name = value
		case "data":
			data = append(data, value)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read event stream: %w", err)
	}
	return nil
}
