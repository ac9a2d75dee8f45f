package events

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Resume is where a live stream that dropped picks up again: the id of the last agent update the
// client received (its Last-Event-ID), which names when what caused it was stored and the agent.
// Every room's stream names its agent updates with UpdateID, so every stream resumes the same way.
type Resume struct {
	ms    int64
	agent string
}

// UpdateID names an agent's update on a live stream: the time of what caused it, then the agent id,
// so updates order by it and a reconnect resumes after it.
func UpdateID(at time.Time, agent string) string {
	return fmt.Sprintf("%d-%s", at.UnixMilli(), agent)
}

// ResumeFrom reads a Last-Event-ID. Anything that is not an UpdateID (none, a stale or forged
// header) resumes from the start rather than skipping updates.
func ResumeFrom(lastEventID string) Resume {
	ms, agent, ok := strings.Cut(lastEventID, "-")
	if !ok {
		return Resume{ms: -1}
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return Resume{ms: -1}
	}
	return Resume{ms: n, agent: agent}
}

// After reports whether the update of agent caused at comes after the resume point: it must be sent.
func (r Resume) After(at time.Time, agent string) bool {
	ms := at.UnixMilli()
	if ms != r.ms {
		return ms > r.ms
	}
	return agent > r.agent
}
