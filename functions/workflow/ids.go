package workflow

import (
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// Every side effect of an execution has an id derived from what it is (the execution, the step, the
// attempt, the purpose), never from when or where it was decided. Two hub instances that fold the same
// events therefore write the same command under the same key, and the store's create-only write (or,
// without one, identical bytes) keeps it single. The ids are name-based UUIDs (version 5): 36
// characters of [0-9a-f-], valid wherever the hub accepts an id.

// idSpace separates Pulse workflow ids from every other name-based UUID.
var idSpace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/pulsehq/pulse/functions/workflow"))

// derive hashes the parts unambiguously: names cannot contain control characters, so NUL separates.
func derive(parts ...string) string {
	return uuid.NewSHA1(idSpace, []byte(strings.Join(parts, "\x00"))).String()
}

// CommandID is the id of the command an execute step's attempt issues (attempts count from 1). A new
// attempt gets a new id, so a retry is a new command and the agents' replay protection never confuses
// it with the failed one.
func CommandID(execution, step string, attempt int) string {
	return derive("command", execution, step, strconv.Itoa(attempt))
}

// TimerID is the id of one timer of a step attempt; purpose tells the timers of one attempt apart.
func TimerID(execution, step string, attempt int, purpose TimerPurpose) string {
	return derive("timer", execution, step, strconv.Itoa(attempt), string(purpose))
}

// PromptID is the id of a prompt step's question, for the hub's notification and answer endpoint.
func PromptID(execution, step string) string {
	return derive("prompt", execution, step)
}
