package process

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"time"

	"github.com/pulsehq/pulse/agent/integration"
)

// checkTimeout bounds one health check attempt.
const checkTimeout = 5 * time.Second

// probe runs the health check once; client is for an HTTP check.
func (h *health) probe(ctx context.Context, client *http.Client) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	switch {
	case len(h.Command) > 0:
		return probeCommand(ctx, h.Command)
	case h.TCP != "":
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", h.TCP)
		if err != nil {
			return fmt.Errorf("tcp %s: %w", h.TCP, err)
		}
		return c.Close()
	default:
		return probeHTTP(ctx, client, h.HTTP)
	}
}

func probeCommand(ctx context.Context, argv []string) error {
	var out bytes.Buffer
	c := exec.CommandContext(ctx, argv[0], argv[1:]...)
	c.Env = integration.MinimalEnv()
	c.Stdout, c.Stderr = &out, &out
	c.WaitDelay = time.Second
	setGroup(c)
	err := c.Run()
	if err == nil {
		return nil
	}
	msg := strings.TrimSpace(out.String())
	if len(msg) > 200 {
		msg = "…" + msg[len(msg)-200:]
	}
	if msg != "" {
		return fmt.Errorf("command %s: %v: %s", argv[0], err, msg)
	}
	return fmt.Errorf("command %s: %v", argv[0], err)
}

// newHealthClient follows no proxy and no redirect: a check is about this host's process.
func newHealthClient() *http.Client {
	return &http.Client{
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func probeHTTP(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("http %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("http %s: %w", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return fmt.Errorf("http %s: answered %s", url, resp.Status)
	}
	return nil
}
