# Pulse's default authorization rules.
#
# The hub asks this policy about every operator request: "may this principal take this action,
# with this command, on these agents?". The rules below fill three sets; decision.rego turns
# them into the answer the hub enforces (see policy/README.md).
#
#   allow contains "<rule>" if { ... }
#       A grant. The action is allowed when at least one grant matches and nothing denies it.
#       Nothing is allowed unless a grant says so.
#
#   deny contains "<why> (rule: <rule>)" if { ... }
#       A refusal, with a message a person can act on. Any refusal wins over every grant.
#       The refusals in this file start with `not granted`: they only explain why no grant
#       matched, so a grant added by an operator policy lifts them.
#
#   approval contains {"rule": ..., "count": n, "groups": [...], "reason": ...} if { ... }
#       The action is allowed, but only after n people from those groups approve it.
#       The hub never counts the requester's own approval.
#
# Rule names (admin_all, viewer_read_only, ...) end up in each audit record.
package pulse.authz

# ---------------------------------------------------------------------------------------------
# Who is asking
# ---------------------------------------------------------------------------------------------

# The principal's groups, from the API token, the OIDC token or the forward-auth proxy.
# Groups this file does not mention grant nothing.
groups contains g if some g in input.principal.groups

is_admin if "admin" in groups

is_operator if "operator" in groups

is_viewer if "viewer" in groups

# The strongest built-in role the principal holds. It only chooses which refusal explains a
# denial; grants look at the groups themselves.
role := "admin" if {
	is_admin
} else := "operator" if {
	is_operator
} else := "viewer" if {
	is_viewer
}

# ---------------------------------------------------------------------------------------------
# What is asked
# ---------------------------------------------------------------------------------------------

# Actions that only read the state of the fleet. A new read operation stays denied to viewers
# and operators until it is listed here: the policy fails closed.
#
# get-audit is deliberately missing: the audit trail shows every parameter anyone passed and
# who unsealed the shell hatch where, so it is for admins only.
read_actions := {
	"list-agents",
	"get-command",
	"get-command-output",
	"list-agent-rejections",
	"list-workflows",
	"get-workflow",
	"get-execution",
	"list-executions",
	"list-commands",
	"list-approvals",
	"get-agent",
	"list-plans",
	"get-plan",
	"get-plan-status",
	"get-rollout",
	"list-plan-proposals",
	"get-metrics",
	"prometheus-targets",
	"agent-prometheus",
	"fleet-prometheus",
	"get-alert-rules",
	"list-alerts",
	"list-channels",
	"get-channel",
	"list-notifications",
	"list-artifacts",
	"get-artifact",
	"get-agent-metrics",
	"list-agent-metrics",
	"list-resources",
	"get-agent-resources",
}

# What operators may do besides reading and running safe commands. Recording an unseal of the
# shell hatch is allowed because refusing it would only lose an audit record.
operator_actions := {
	"cancel-command",
	"create-enroll-token",
	"report-unseal",
	"start-execution",
	"respond-prompt",
	"cancel-execution",
	"list-enroll-tokens",
	"revoke-enroll-token",
	"set-agent-labels",
	"ack-alert",
	"snooze-alert",
}

# Actions on who may do what, on the audit trail, on someone else's command awaiting approval,
# on retiring an agent, on workflow definitions (a scheduled run acts for whoever applied it) and on
# plans (a plan is what every agent it targets enforces, for as long as it stands) and on artifacts
# (what a plan can install, the agent's own binary included).
# They are named here only to explain their denial (admins get them through admin_all); add the
# policy operations here when the hub grows them (TestEveryActionIsNamedInThePolicy checks).
admin_actions := {
	"get-audit",
	"verify-audit",
	"get-integrity",
	"create-token",
	"list-tokens",
	"revoke-token",
	"approve-command",
	"deny-command",
	"retire-agent",
	"apply-workflow",
	"delete-workflow",
	"apply-plan",
	"delete-plan",
	"pause-rollout",
	"resume-rollout",
	"promote-rollout",
	"abort-rollout",
	"rollback-plan",
	"approve-plan",
	"deny-plan",
	"apply-alert-rules",
	"set-channel",
	"delete-channel",
	"test-channel",
	"push-artifact",
}

# The raw-shell hatch: a command that runs whatever it is given on the agent.
is_shell_run if {
	input.action == "create-command"
	input.command == "shell_run"
}

# At least one target agent is labelled env=prod.
touches_prod if {
	some target in input.targets
	target.labels.env == "prod"
}

# ---------------------------------------------------------------------------------------------
# Grants
# ---------------------------------------------------------------------------------------------

# rule: admin_all — admins may do everything (shell_run and prod still need approvals, below).
allow contains "admin_all" if is_admin

# rule: viewer_read — viewers may read the state of the fleet.
allow contains "viewer_read" if {
	is_viewer
	input.action in read_actions
}

# rule: operator_read — so may operators.
allow contains "operator_read" if {
	is_operator
	input.action in read_actions
}

# rule: operator_run — operators may run commands that no target catalog marks dangerous.
# shell_run is excluded by name, whether or not a catalog marks it dangerous.
allow contains "operator_run" if {
	is_operator
	input.action == "create-command"
	not input.dangerous
	not is_shell_run
}

# rule: operator_manage — operators may cancel commands, enroll agents and report unseals.
allow contains "operator_manage" if {
	is_operator
	input.action in operator_actions
}

# ---------------------------------------------------------------------------------------------
# Refusals: why no grant matched
# ---------------------------------------------------------------------------------------------

# Some grant matched. Each refusal below starts with `not granted`: it explains a denial that
# default_deny would otherwise report, and a grant from an operator policy lifts it.
granted if count(allow) > 0

# rule: admin_only — tokens, approvals and the audit trail are for admins.
deny contains msg if {
	not granted
	role in {"operator", "viewer"}
	input.action in admin_actions
	msg := sprintf("%s is reserved to admins (rule: admin_only)", [input.action])
}

# rule: viewer_read_only — anything else a viewer tries.
deny contains "viewers may only read (rule: viewer_read_only)" if {
	not granted
	role == "viewer"
	not input.action in read_actions
	not input.action in admin_actions
}

# rule: operator_no_dangerous — an operator's dangerous command.
deny contains "operators may not run commands marked dangerous; ask an admin (rule: operator_no_dangerous)" if {
	not granted
	role == "operator"
	input.action == "create-command"
	input.dangerous
	not is_shell_run
}

# rule: shell_run_admin_only — an operator's shell_run.
deny contains "only admins may run shell_run, and only after 2 other admins approve (rule: shell_run_admin_only)" if {
	not granted
	role == "operator"
	is_shell_run
}

# ---------------------------------------------------------------------------------------------
# Approvals: allowed, but not by one person alone
# ---------------------------------------------------------------------------------------------

# rule: shell_run_two_admins — whoever may run shell_run (by default: admins), two admins other
# than the requester must approve each run.
approval contains {
	"rule": "shell_run_two_admins",
	"count": 2,
	"groups": ["admin"],
	"reason": "shell_run opens a raw shell on the agent: 2 admins other than the requester must approve",
} if is_shell_run

# rule: prod_plan_one_approval — applying a plan, or promoting its rollout, on any agent labelled
# env=prod needs a second admin: the operation is stored as a proposal until then.
approval contains {
	"rule": "prod_plan_one_approval",
	"count": 1,
	"groups": ["admin"],
	"reason": "a plan on env=prod agents: 1 admin other than the requester must approve",
} if {
	input.action in {"apply-plan", "promote-rollout"}
	touches_prod
}

# rule: prod_dangerous_one_approval — a dangerous command on any agent labelled env=prod needs a
# second admin. By default only admins may run dangerous commands; the rule holds for whoever
# a custom grant lets run them. It shows the mechanism: copy it for other labels or commands.
approval contains {
	"rule": "prod_dangerous_one_approval",
	"count": 1,
	"groups": ["admin"],
	"reason": "dangerous command on an env=prod agent: 1 admin other than the requester must approve",
} if {
	input.action == "create-command"
	input.dangerous
	touches_prod
}
