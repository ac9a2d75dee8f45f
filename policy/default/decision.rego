# How Pulse turns the rule sets into the decision the hub enforces.
#
# rules.rego (and any operator policy in the same package) fills three sets: `allow` (names of
# the grants that matched), `deny` (refusal messages ending in "(rule: <name>)") and `approval`
# (approval requirements). This file reads them and nothing else, so it keeps working when an
# operator replaces rules.rego with rules of their own. They are read through `data.` so that a
# rules file which never denies or never asks for approvals need not define the set at all.
package pulse.authz

# The one document the hub queries (data.pulse.authz.decision).
decision := {
	"allow": allowed,
	"reasons": reasons,
	"approvals": approvals,
	"rules": sort(matched_rules),
}

grants := {name | some name in data.pulse.authz.allow}

refusals := {msg | some msg in data.pulse.authz.deny}

requirements := {req | some req in data.pulse.authz.approval}

# Allowed when some grant matched and no refusal did. Everything else is denied.
default allowed := false

allowed if {
	count(grants) > 0
	count(refusals) == 0
}

# Why a request was denied: the refusals, or the default-deny message when no grant matched
# and no refusal explains why. Empty when allowed.
reasons := sort(refusals) if {
	count(refusals) > 0
} else := [default_deny_message] if {
	count(grants) == 0
} else := []

# rule: default_deny — nothing is allowed unless a grant says so; unknown groups get nothing.
default_deny_message := sprintf("no rule allows %s for groups [%s] (rule: default_deny)", [
	input.action,
	concat(", ", sort({g | some g in input.principal.groups})),
])

# The approvals an allowed action still needs. The hub enforces one count from one list of
# groups, so when several requirements match, the one asking for the most approvals wins
# (ties are broken by Rego's sort order, so every hub replica picks the same one).
# null when none is needed, or when the action is denied anyway.
approvals := {
	"count": strictest.count,
	"groups": strictest.groups,
	"reason": strictest.reason,
} if {
	allowed
	most := max({req.count | some req in requirements})
	strictest := sort([req | some req in requirements; req.count == most])[0]
} else := null

# The names of every rule that shaped the decision, for the audit record.
matched_rules contains name if some name in grants

matched_rules contains name if {
	some msg in refusals
	some match in regex.find_all_string_submatch_n(`\(rule: ([^)]+)\)`, msg, -1)
	name := match[1]
}

matched_rules contains req.rule if {
	allowed
	some req in requirements
}

matched_rules contains "default_deny" if {
	count(grants) == 0
	count(refusals) == 0
}
