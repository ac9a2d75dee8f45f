// Package layout is the one place that builds store keys. Every object the hub keeps lives under a key
// made here, so the layout can be read (and documented, and checked against docs/protocol.md) in one
// file, and no two parts of the hub can disagree about where a thing lives.
//
// The rules the keys follow: everything is versioned under v1/; every object is written once under a
// key that no other writer would choose for different content (the few exceptions, heartbeats, are
// overwritten by their one writer); no key is the "directory" of another (objects end in .json or
// .bin), because some S3 servers drop one of `a` and `a/b` from listings.
package layout

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Prefix is a top-level family of keys. Prefixes lists them all, with what each holds, so the key
// table in docs/protocol.md can be checked against the code.
type Prefix struct {
	Path string
	What string
}

// The prefixes, each ending in "/".
const (
	Agents              = "v1/agents/"
	AgentLabels         = "v1/agent-labels/"
	RetiredAgents       = "v1/retired-agents/"
	Heartbeats          = "v1/heartbeats/"
	Deliveries          = "v1/deliveries/"
	Bells               = "v1/bells/"
	Doorbells           = "v1/doorbells/"
	Commands            = "v1/commands/"
	Results             = "v1/results/"
	Releasing           = "v1/releasing/"
	Rejections          = "v1/rejections/"
	Tokens              = "v1/tokens/"
	RevokedTokens       = "v1/revoked-tokens/"
	EnrollTokens        = "v1/enroll-tokens/"
	RevokedEnrollTokens = "v1/revoked-enroll-tokens/"
	Workflows           = "v1/workflows/"
	Executions          = "v1/executions/"
	ActiveExecutions    = "v1/executions-active/"
	ScheduleFires       = "v1/schedule-fires/"
	Plans               = "v1/plans/"
	Artifacts           = "v1/artifacts/"
	ArtifactChunks      = "v1/artifact-chunks/"
	AlertRules          = "v1/alert-rules/"
	Alerts              = "v1/alerts/"
	AlertTracks         = "v1/alert-tracks/"
	AlertSeriesTracks   = "v1/alert-series-tracks/"
	AlertUnitTracks     = "v1/alert-unit-tracks/"
	AlertCommandTracks  = "v1/alert-command-tracks/"
	AlertSnoozes        = "v1/alert-snoozes/"
	Resources           = "v1/resources/"
	Channels            = "v1/channels/"
	Notifications       = "v1/notifications/"
	NotificationQueue   = "v1/notification-queue/"

	Metrics    = "v1/metrics/"
	Audit      = "v1/audit/"
	AuditSeals = "v1/audit-seals/"
	Probe      = "v1/_probe/"
)

// Prefixes is every prefix the hub writes under, with what it holds.
func Prefixes() []Prefix {
	return []Prefix{
		{Agents, "agent identities, written once at enrollment"},
		{AgentLabels, "label changes of an agent, one write-once version each; the newest wins"},
		{RetiredAgents, "retired agents, whose signatures are refused from then on"},
		{Heartbeats, "the latest heartbeat of each agent (overwritten by its agent)"},
		{Deliveries, "signed envelopes for agents, one per release of a command to many agents, by expiry"},
		{Bells, "the change feed that wakes polls held by other hub instances"},
		{Doorbells, "function mode: per agent, the open deliveries for it and its live watch, read once by each of its polls"},
		{Commands, "command records, and beside each its cancel, denial and approvals"},
		{Results, "per agent: the result (small output inline), a running marker, output chunks"},
		{Releasing, "releases in progress, which the tick finishes if the hub releasing them did not"},
		{Rejections, "envelopes an agent refused, with the reason"},
		{Tokens, "operator API tokens, by hash"},
		{RevokedTokens, "revocations of operator tokens"},
		{EnrollTokens, "enrollment tokens by hash, and their claimed use slots"},
		{RevokedEnrollTokens, "revocations of enrollment tokens"},
		{Workflows, "workflow definitions, one write-once version each"},
		{Executions, "workflow executions and their events"},
		{ActiveExecutions, "executions the tick still drives"},
		{ScheduleFires, "cron slots that fired, one per workflow and slot"},
		{Plans, "plan versions and rollout events (write-once) and each agent's last reported status of a plan"},
		{Artifacts, "artifact manifests, one per complete artifact, by its sha256, written once after its chunks were checked"},
		{ArtifactChunks, "the chunks of artifacts by sha256 and number, uploaded before the manifest"},
		{AlertRules, "alert rule sets, one write-once version each; the newest is evaluated"},
		{Alerts, "alerts, by id: when each fired and resolved (write-once, so an alert fires once whichever hub saw it)"},
		{AlertTracks, "where each rule stands on each subject (overwritten when it changes), so a restarted hub goes on"},
		{AlertSeriesTracks, "where every metric rule stands on each series of one agent, one object per agent (overwritten by the hub that takes its batch)"},
		{AlertUnitTracks, "where every unit rule stands on each plan unit of one agent, one object per agent (overwritten by the hub that takes its plan status)"},
		{AlertCommandTracks, "every commands rule's recent failures on one agent, one object per agent (written with a condition on its version)"},
		{AlertSnoozes, "a rule's notifications held on one subject until a time (overwritten when extended)"},
		{Resources, "each agent's newest inventory report: its resources (overwritten by the hub receiving a newer report)"},
		{Channels, "notification channels, one per name (overwritten when applied), their secrets sealed under a key derived from the hub's signing key"},
		{Notifications, "notification deliveries by id (alert, kind, channel; write-once) and beside each its attempts (claimed create-only, then the outcome written by the claimer)"},
		{NotificationQueue, "the deliveries not yet sent or given up, which every instance's tick lists; deleted once a delivery is final"},
		{Metrics, "agents' metric batches (raw, by hour) and their compacted tiers (1m by hour, 1h by day, 1d by month), and which windows are compacted"},
		{Audit, "audit records, one per mutation, by day"},
		{AuditSeals, "the hash chain sealing the audit records"},
		{Probe, "throw-away objects of the start-up store probe"},
	}
}

// --- agents ---

// AgentResources is an agent's newest inventory report.
func AgentResources(agent string) string { return Resources + agent + ".json" }

// Agent is an agent's identity.
func Agent(id string) string { return Agents + id + ".json" }

// AgentLabelsOf is where an agent's label versions are listed.
func AgentLabelsOf(agent string) string { return AgentLabels + agent + "/" }

// AgentLabelsVersion is one label version of an agent (versions count from 1).
func AgentLabelsVersion(agent string, version int) string {
	return fmt.Sprintf("%s%06d.json", AgentLabelsOf(agent), version)
}

// RetiredAgent marks an agent retired.
func RetiredAgent(id string) string { return RetiredAgents + id + ".json" }

// Heartbeat is an agent's latest heartbeat.
func Heartbeat(id string) string { return Heartbeats + id + ".json" }

// --- delivery ---

// Delivery is one stored delivery: signed envelopes (each for up to wire.MaxAddressees agents) that
// expire at notAfter. Keys start with the expiry, so the deliveries still open are listed from
// DeliveriesFrom(now) and the expired ones swept from the start; id names what is delivered (a
// command's wave, its cancel) and is unique.
func Delivery(notAfter time.Time, id string) string {
	return fmt.Sprintf("%s%012d-%s.json", Deliveries, max(notAfter.Unix(), 0), id)
}

// DeliveriesFrom is the smallest delivery key expiring at or after t.
func DeliveriesFrom(t time.Time) string { return fmt.Sprintf("%s%012d", Deliveries, max(t.Unix(), 0)) }

// DeliveryExpiry reads the expiry back from a delivery key; ok is false for a key not made by Delivery.
func DeliveryExpiry(key string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(key, Deliveries)
	if !ok || len(rest) < 13 || rest[12] != '-' {
		return time.Time{}, false
	}
	var sec int64
	for _, c := range rest[:12] {
		if c < '0' || c > '9' {
			return time.Time{}, false
		}
		sec = sec*10 + int64(c-'0')
	}
	return time.Unix(sec, 0), true
}

// Doorbell is one agent's doorbell (function mode): the deliveries waiting for it, so a poll served by
// a fresh function instance costs one GET instead of a LIST of the open deliveries.
func Doorbell(agent string) string { return Doorbells + agent + ".json" }

// Bell is one entry of the bell feed; id is a UUIDv7, so bells sort by time.
func Bell(id string) string { return Bells + id + ".json" }

// BellAt is the smallest bell key written at or after t (UUIDv7 keys start with their millisecond time).
func BellAt(t time.Time) string {
	ms := uint64(t.UnixMilli())
	return fmt.Sprintf("%s%08x-%04x", Bells, ms>>16, ms&0xffff)
}

// Rejection is one refused-envelope report of an agent.
func Rejection(agent, id string) string { return RejectionsOf(agent) + id + ".json" }

// RejectionsOf is where an agent's rejection reports are listed.
func RejectionsOf(agent string) string { return Rejections + agent + "/" }

// --- commands ---

// Command is a command record.
func Command(id string) string { return Commands + id + ".json" }

// CommandSide is where a command's cancel, denial, approvals and waves are listed.
func CommandSide(id string) string { return Commands + id + "/" }

// Cancelled marks a command cancelled.
func Cancelled(id string) string { return CommandSide(id) + "cancelled.json" }

// Denied marks a command denied by an approver.
func Denied(id string) string { return CommandSide(id) + "denied.json" }

// Approval is one approver's approval of a command; approver is a key-safe form of their identity.
func Approval(id, approver string) string { return CommandSide(id) + "approvals/" + approver + ".json" }

// Wave is release seq (from 1) of a command: which agents it released and the delivery that carries
// their envelope. Written once, before the delivery; the seq makes two hubs releasing at once collide.
func Wave(id string, seq int) string { return fmt.Sprintf("%swaves/%06d.json", CommandSide(id), seq) }

// ReleasingOf is where a command's releases in progress are listed.
func ReleasingOf(cmd string) string { return Releasing + cmd + "/" }

// Release is one release in progress of a command (id is a UUIDv7): written before the release's
// first marker, deleted once every envelope of it is written.
func Release(cmd, id string) string { return ReleasingOf(cmd) + id + ".json" }

// ResultsOf is where everything agents reported about a command is listed.
func ResultsOf(cmd string) string { return Results + cmd + "/" }

// Result is an agent's final result of a command.
func Result(cmd, agent string) string { return ResultsOf(cmd) + agent + ".json" }

// Running records that a command was still running on an agent a second after it started (a command
// done sooner is told by its result alone).
func Running(cmd, agent string) string { return ResultsOf(cmd) + agent + "/running.json" }

// Chunk is one chunk of an agent's output of a command.
func Chunk(cmd, agent string, seq int) string {
	return fmt.Sprintf("%s%s/output/%010d.bin", ResultsOf(cmd), agent, seq)
}

// --- access ---

// Token is an operator token, by the hash of its secret.
func Token(hash string) string { return Tokens + hash + ".json" }

// RevokedToken marks an operator token revoked.
func RevokedToken(hash string) string { return RevokedTokens + hash + ".json" }

// EnrollToken is an enrollment token, by the hash of its secret.
func EnrollToken(hash string) string { return EnrollTokens + hash + ".json" }

// EnrollTokenUsesOf is where an enrollment token's claimed use slots are listed.
func EnrollTokenUsesOf(hash string) string { return EnrollTokens + hash + "/" }

// EnrollTokenUse is use slot n (from 1) of an enrollment token.
func EnrollTokenUse(hash string, n int) string {
	return fmt.Sprintf("%suse-%06d.json", EnrollTokenUsesOf(hash), n)
}

// RevokedEnrollToken marks an enrollment token revoked.
func RevokedEnrollToken(hash string) string { return RevokedEnrollTokens + hash + ".json" }

// --- workflows ---

// WorkflowVersionsOf is where a workflow's versions are listed.
func WorkflowVersionsOf(name string) string { return Workflows + name + "/" }

// WorkflowVersion is one version of a workflow (versions count from 1).
func WorkflowVersion(name string, version int) string {
	return fmt.Sprintf("%s%06d.json", WorkflowVersionsOf(name), version)
}

// Execution is what was started.
func Execution(id string) string { return Executions + id + ".json" }

// EventsOf is where an execution's events are listed.
func EventsOf(id string) string { return Executions + id + "/events/" }

// Event is one event of an execution; id is a UUIDv7.
func Event(exec, id string) string { return EventsOf(exec) + id + ".json" }

// EventsSince is a listing start (store.List's startAfter) for an execution's events whose UUIDv7
// ids were made at or after t's millisecond: it sorts after every such id made earlier and before every
// one made then or later. The workflow driver lists from a little before the last event it folded,
// because another hub's events can land with slightly older ids.
func EventsSince(exec string, t time.Time) string {
	ms := uint64(max(t.UnixMilli(), 0))
	return fmt.Sprintf("%s%08x-%04x", EventsOf(exec), ms>>16, ms&0xffff)
}

// EventTime is when an event key's UUIDv7 id was made (to the millisecond), and false for a key whose
// name is not a UUIDv7.
func EventTime(key string) (time.Time, bool) {
	u, err := uuid.Parse(Name(key))
	if err != nil || u.Version() != 7 {
		return time.Time{}, false
	}
	ms := int64(u[0])<<40 | int64(u[1])<<32 | int64(u[2])<<24 | int64(u[3])<<16 | int64(u[4])<<8 | int64(u[5])
	return time.UnixMilli(ms).UTC(), true
}

// ActiveExecution lists an execution for the tick.
func ActiveExecution(id string) string { return ActiveExecutions + id + ".json" }

// ScheduleFiresOf is where a workflow's fired slots are listed.
func ScheduleFiresOf(name string) string { return ScheduleFires + name + "/" }

// ScheduleFire records that a workflow's cron slot at t fired.
func ScheduleFire(name string, t time.Time) string {
	return fmt.Sprintf("%s%012d.json", ScheduleFiresOf(name), t.Unix())
}

// --- plans ---

// PlanOf is where everything of a plan is listed: its versions and the agents' statuses.
func PlanOf(name string) string { return Plans + name + "/" }

// PlanVersionsOf is where a plan's versions are listed.
func PlanVersionsOf(name string) string { return PlanOf(name) + "versions/" }

// PlanVersion is one version of a plan (versions count from 1), written once: the number makes two
// hubs applying at once collide.
func PlanVersion(name string, version int) string {
	return fmt.Sprintf("%s%06d.json", PlanVersionsOf(name), version)
}

// PlanStatusesOf is where the agents' statuses of a plan are listed.
func PlanStatusesOf(name string) string { return PlanOf(name) + "status/" }

// PlanStatus is an agent's last reported status of a plan, overwritten when it changes (by the
// hub that received the report, for that one agent).
func PlanStatus(name, agent string) string { return PlanStatusesOf(name) + agent + ".json" }

// PlanRolloutsOf is where the rollouts of a plan's versions are listed.
func PlanRolloutsOf(name string) string { return PlanOf(name) + "rollouts/" }

// PlanRolloutOf is where the events of the rollout of one version of a plan are listed, in order.
func PlanRolloutOf(name string, version int) string {
	return fmt.Sprintf("%s%06d/", PlanRolloutsOf(name), version)
}

// PlanRolloutEvent is one event of a version's rollout (a wave released, paused, halted, …), written
// once: the sequence number makes two hubs that decide the same step at once collide, so it is taken
// once.
func PlanRolloutEvent(name string, version, seq int) string {
	return fmt.Sprintf("%s%04d.json", PlanRolloutOf(name, version), seq)
}

// PlanProposalsOf is where a plan's proposals (operations waiting for approvals) are listed.
func PlanProposalsOf(name string) string { return PlanOf(name) + "proposals/" }

// PlanProposal is one proposal, written once.
func PlanProposal(name, id string) string { return PlanProposalsOf(name) + id + ".json" }

// PlanProposalOf is where a proposal's approvals and outcome are listed.
func PlanProposalOf(name, id string) string { return PlanProposalsOf(name) + id + "/" }

// PlanProposalApproval is one person's approval of a proposal (approver: a key naming the person),
// written once: a person counts once.
func PlanProposalApproval(name, id, approver string) string {
	return PlanProposalOf(name, id) + "approvals/" + approver + ".json"
}

// PlanProposalOutcome is what became of a proposal (done, denied, stale), written once.
func PlanProposalOutcome(name, id string) string { return PlanProposalOf(name, id) + "outcome.json" }

// --- artifacts ---

// ArtifactManifest is the manifest of the artifact whose SHA-256 is hexDigest. Manifests sit under
// their own prefix, apart from the chunks, so listing the artifacts lists one key per artifact, not
// one per chunk.
func ArtifactManifest(hexDigest string) string { return Artifacts + hexDigest + ".json" }

// ArtifactChunksOf is where the chunks of an artifact are.
func ArtifactChunksOf(hexDigest string) string { return ArtifactChunks + hexDigest + "/" }

// ArtifactChunk is chunk n (from 0) of an artifact. Its content is fixed by the digest and the chunk
// size, so every correct writer writes the same bytes there.
func ArtifactChunk(hexDigest string, n int) string {
	return fmt.Sprintf("%s%06d.bin", ArtifactChunksOf(hexDigest), n)
}

// ArtifactChunkIndex is the number of the chunk stored under key (ArtifactChunk).
func ArtifactChunkIndex(key string) (int, bool) {
	name := key[strings.LastIndex(key, "/")+1:]
	num, ok := strings.CutSuffix(name, ".bin")
	if !ok || len(num) != 6 {
		return 0, false
	}
	n := 0
	for _, c := range num {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// --- alerts ---

// AlertRulesVersion is version n of the alert rules, written once.
func AlertRulesVersion(n int) string { return fmt.Sprintf("%s%06d.json", AlertRules, n) }

// AlertEvent is one event of an alert (fired, resolved), written once: the alert's id comes from the
// data, so two hubs that see it fire write the same key, and one of them writes it.
func AlertEvent(id, kind string) string { return Alerts + id + "/" + kind + ".json" }

// AlertTracksOf is where a rule's tracks are listed.
func AlertTracksOf(rule string) string { return AlertTracks + rule + "/" }

// AlertTrack is where rule stands on one subject (subject: a key-safe name of it).
func AlertTrack(rule, subject string) string { return AlertTracksOf(rule) + subject + ".json" }

// AlertSeriesTrack is where every metric rule stands on the series of one agent: the hub that takes a
// batch reads and writes one object, however many rules and series.
func AlertSeriesTrack(agent string) string { return AlertSeriesTracks + agent + ".json" }

// AlertAck is the acknowledgement of one alert, written once, beside its events so one listing of
// the alerts finds it.
func AlertAck(id string) string { return Alerts + id + "/ack.json" }

// AlertUnitTrack is where every unit rule stands on the plan units of one agent.
func AlertUnitTrack(agent string) string { return AlertUnitTracks + agent + ".json" }

// AlertCommandTrack is where every commands rule stands on one agent, with its recent failures.
func AlertCommandTrack(agent string) string { return AlertCommandTracks + agent + ".json" }

// AlertSnooze holds a rule's notifications on one subject (a key-safe name of it).
func AlertSnooze(rule, subject string) string { return AlertSnoozes + rule + "/" + subject + ".json" }

// --- notifications ---

// Channel is a notification channel, by name.
func Channel(name string) string { return Channels + name + ".json" }

// Notification is one delivery of a notification to a channel, written once: its id comes from the
// alert, the message kind and the channel, so every hub queueing it writes the same key.
func Notification(id string) string { return Notifications + id + ".json" }

// NotificationAttemptsOf is where a delivery's attempts are listed.
func NotificationAttemptsOf(id string) string { return Notifications + id + "/" }

// NotificationAttempt is attempt n (from 1) of a delivery: claimed create-only before sending, so one
// hub instance makes each attempt, then overwritten by that instance with the outcome.
func NotificationAttempt(id string, n int) string {
	return fmt.Sprintf("%s%04d.json", NotificationAttemptsOf(id), n)
}

// NotificationQueued lists a delivery for the ticks until it is sent or given up.
func NotificationQueued(id string) string { return NotificationQueue + id + ".json" }

// --- metrics ---

// Metric tiers: raw batches, and the compacted tiers by resolution.
const (
	MetricsRaw    = "raw"
	MetricsMinute = "1m"
	MetricsHour   = "1h"
	MetricsDay    = "1d"
)

// MetricsWindow names the window of a metric tier that starts at t (UTC): an hour for raw and 1m
// (2026-12-01T17), a day for 1h (2026-12-01), a month for 1d (2026-12). Names sort by time, so a
// listing of a tier walks its windows oldest first and retention deletes from the start.
func MetricsWindow(tier string, t time.Time) string {
	t = t.UTC()
	switch tier {
	case MetricsHour:
		return t.Format("2006-01-02")
	case MetricsDay:
		return t.Format("2006-01")
	}
	return t.Format("2006-01-02T15")
}

// MetricsWindowStart reads a window name back (MetricsWindow); ok is false for another name.
func MetricsWindowStart(tier, window string) (time.Time, bool) {
	layout := "2006-01-02T15"
	switch tier {
	case MetricsHour:
		layout = "2006-01-02"
	case MetricsDay:
		layout = "2006-01"
	}
	t, err := time.Parse(layout, window)
	return t, err == nil
}

// MetricsTier is where every object of a tier is listed, oldest window first.
func MetricsTier(tier string) string { return Metrics + tier + "/" }

// MetricsWindowOf is where every agent's objects of one window of a tier are listed.
func MetricsWindowOf(tier string, start time.Time) string {
	return MetricsTier(tier) + MetricsWindow(tier, start) + "/"
}

// MetricsRawOf is where an agent's raw batches of the hour starting at hour are listed.
func MetricsRawOf(hour time.Time, agent string) string {
	return MetricsWindowOf(MetricsRaw, hour) + agent + "/"
}

// MetricsRawBatch is the points of an agent's batch seq that fall in the hour starting at hour, stored
// write-once and gzip-compressed. The agent numbers its batches, so a batch uploaded again lands on
// the same key and is stored once; a batch spanning several hours is stored once per hour it touches.
func MetricsRawBatch(hour time.Time, agent string, seq uint64) string {
	return fmt.Sprintf("%s%020d.json.gz", MetricsRawOf(hour, agent), seq)
}

// MetricsRollup is an agent's compacted object of one window of a tier (1m, 1h or 1d), written
// once by the tick: every hub that compacts the window writes the same bytes here.
func MetricsRollup(tier string, start time.Time, agent string) string {
	return MetricsWindowOf(tier, start) + agent + ".json.gz"
}

// MetricsDoneOf is where the compacted windows of a tier are listed.
func MetricsDoneOf(tier string) string { return Metrics + "done/" + tier + "/" }

// MetricsDone marks a window of a tier compacted for every agent that had data in it.
func MetricsDone(tier string, start time.Time) string {
	return MetricsDoneOf(tier) + MetricsWindow(tier, start) + ".json"
}

// MetricsAgentOf reads the agent back from a raw batch or rollup key ("" for another key).
func MetricsAgentOf(key string) string {
	rest, ok := strings.CutPrefix(key, Metrics)
	if !ok {
		return ""
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 4 && parts[0] == MetricsRaw:
		return parts[2]
	case len(parts) == 3 && parts[0] != "done":
		return strings.TrimSuffix(parts[2], ".json.gz")
	}
	return ""
}

// --- audit ---

// AuditDay is where one UTC day's audit records are listed.
func AuditDay(day time.Time) string { return Audit + day.UTC().Format("2006-01-02") + "/" }

// AuditRecord is one audit record.
func AuditRecord(at time.Time, id string) string { return AuditDay(at) + id + ".json" }

// AuditSeal is seal seq of the audit chain.
func AuditSeal(seq int) string { return fmt.Sprintf("%s%012d.json", AuditSeals, seq) }

// --- reading keys back ---

// Name returns the file name of a key without its extension: the id of the thing it holds.
func Name(key string) string {
	name := key[strings.LastIndex(key, "/")+1:]
	if i := strings.IndexByte(name, '.'); i >= 0 {
		name = name[:i]
	}
	return name
}

// ValidID guards ids that become key segments: they come from URLs and must not smuggle a "/".
func ValidID(id string) bool { return KeySafe(id, 64) }

// KeySafe reports whether s is 1 to max letters, digits, '-' and '_': safe inside a key, and in what
// agents send back (the delivery names they acknowledge).
func KeySafe(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// AuditAt is the smallest audit record key written at or after t (record ids are UUIDv7).
func AuditAt(t time.Time) string {
	ms := uint64(t.UnixMilli())
	return fmt.Sprintf("%s%08x-%04x", AuditDay(t), ms>>16, ms&0xffff)
}
