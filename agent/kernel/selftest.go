package kernel

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pulsehq/pulse/agent/httpsig"
	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/state"
)

// SelfTestResult is what a binary that passed its self-test says of itself.
type SelfTestResult struct {
	Version string `json:"version"`
	AgentID string `json:"agentId"`
	// Integrations are the enabled integrations, so a new binary that lost one is visible.
	Integrations []string `json:"integrations"`
}

// SelfTest is what `pulse-agent selftest` runs before a new agent binary replaces the running one:
// with the running agent's configuration, it reads the key and identity (without taking the state
// directory's lock, which the running agent holds), loads the integrations, and makes one signed,
// read-only request to the hub (its plans). A binary that cannot do that would never report in, so it
// is not swapped in.
func SelfTest(ctx context.Context, cfg Config) (SelfTestResult, error) {
	cfg.setDefaults()
	res := SelfTestResult{Version: cfg.Version}
	key, id, err := state.Peek(cfg.StateDir)
	if err != nil {
		return res, fmt.Errorf("state directory %s: %w", cfg.StateDir, err)
	}
	res.AgentID = id.AgentID
	hubURL := cfg.Hub
	if hubURL == "" {
		hubURL = id.Hub
	}
	if err := CheckHubURL(hubURL); err != nil {
		return res, err
	}
	// No state directory for the integrations: the test must not touch the running agent's records.
	set := integration.Load(ctx, cfg.Integrations, cfg.Logger.With("component", "integration"))
	for _, st := range set.Statuses() {
		if st.Enabled {
			res.Integrations = append(res.Integrations, st.ID)
		}
	}
	signer, err := httpsig.NewSigner(key, id.AgentID, nil)
	if err != nil {
		return res, fmt.Errorf("request signer: %w", err)
	}
	c := &hubClient{base: strings.TrimRight(hubURL, "/"), agentID: id.AgentID, http: cfg.HTTPClient, signer: signer}
	_, _, err = c.do(ctx, "self-test request", http.MethodGet, c.agentURL("plans"), "", nil, 20*time.Second, true, false)
	var he *HubError
	if errors.As(err, &he) && he.Status == http.StatusNotFound && !strings.Contains(he.Detail, "agent") {
		err = nil // a hub without plans: the signature was accepted all the same
	}
	return res, err
}
