# Tests of the default rules: each grant, refusal and approval rule, both when it matches and
# when it must not. `go test ./policy/...` runs them (so does `opa test policy/default`).
package pulse.authz_test

import data.pulse.authz

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

# A request as the hub sends it.
req(groups, action) := {
	"principal": {"id": "u-1", "name": "Ada", "groups": groups, "via": "token"},
	"action": action,
	"time": "2026-03-02T10:00:00Z",
}

# create-command for a command that is not dangerous, on one agent.
run(groups, command) := object.union(req(groups, "create-command"), {
	"command": command,
	"targets": [{"id": "a-1", "name": "web-1", "labels": {"env": "staging"}}],
})

# The same, for a command some catalog marks dangerous.
run_dangerous(groups, command) := object.union(run(groups, command), {"dangerous": true})

# The same, on two agents of which one is in production.
on_prod(request) := object.union(request, {"targets": [
	{"id": "a-1", "name": "web-1", "labels": {"env": "staging"}},
	{"id": "a-2", "name": "db-1", "labels": {"env": "prod", "role": "db"}},
]})

decide(request) := d if {
	d := authz.decision with input as request
}

allowed_plainly(request) if {
	d := decide(request)
	d.allow == true
	d.approvals == null
	d.reasons == []
}

denied_by(request, rule) if {
	d := decide(request)
	d.allow == false
	d.approvals == null
	d.rules == [rule]
	some reason in d.reasons
	endswith(reason, sprintf("(rule: %s)", [rule]))
}

read_actions := ["list-agents", "get-command", "get-command-output", "list-agent-rejections"]

# ---------------------------------------------------------------------------------------------
# admin_all
# ---------------------------------------------------------------------------------------------

test_admin_may_do_everything if {
	every action in array.concat(read_actions, [
		"get-audit", "verify-audit", "create-token", "list-tokens", "revoke-token",
		"approve-command", "deny-command", "cancel-command", "create-enroll-token", "report-unseal", "some-future-action",
	]) {
		allowed_plainly(req(["admin"], action))
		decide(req(["admin"], action)).rules == ["admin_all"]
	}
}

test_admin_runs_dangerous_commands_outside_prod if {
	allowed_plainly(run_dangerous(["admin"], "reboot"))
}

test_admin_group_must_match_exactly if {
	denied_by(req(["Admin"], "create-token"), "default_deny")
	denied_by(req(["admins"], "create-token"), "default_deny")
}

# ---------------------------------------------------------------------------------------------
# viewer_read, viewer_read_only
# ---------------------------------------------------------------------------------------------

test_viewer_reads if {
	every action in read_actions {
		allowed_plainly(req(["viewer"], action))
		decide(req(["viewer"], action)).rules == ["viewer_read"]
	}
}

test_viewer_may_not_run_commands if {
	denied_by(run(["viewer"], "uptime"), "viewer_read_only")
	decide(run(["viewer"], "uptime")).reasons == ["viewers may only read (rule: viewer_read_only)"]
}

test_viewer_may_not_change_anything if {
	every action in ["cancel-command", "create-enroll-token", "report-unseal", "some-future-action"] {
		denied_by(req(["viewer"], action), "viewer_read_only")
	}
}

test_viewer_may_not_run_shell_run if {
	denied_by(run(["viewer"], "shell_run"), "viewer_read_only")
}

# ---------------------------------------------------------------------------------------------
# admin_only
# ---------------------------------------------------------------------------------------------

test_admin_only_actions_explained_to_viewers_and_operators if {
	every groups in [["viewer"], ["operator"], ["viewer", "operator"]] {
		every action in [
			"get-audit", "verify-audit", "get-integrity", "create-token", "list-tokens", "revoke-token",
			"approve-command", "deny-command", "retire-agent", "apply-workflow", "delete-workflow", "apply-plan", "delete-plan",
			"pause-rollout", "resume-rollout", "promote-rollout", "abort-rollout", "rollback-plan", "approve-plan", "deny-plan",
			"push-artifact", "set-channel", "delete-channel", "test-channel",
		] {
			denied_by(req(groups, action), "admin_only")
			decide(req(groups, action)).reasons == [sprintf("%s is reserved to admins (rule: admin_only)", [action])]
		}
	}
}

# ---------------------------------------------------------------------------------------------
# plans: read like the fleet, applied by whoever may apply workflows (admins by default)
# ---------------------------------------------------------------------------------------------

# apply-plan as the plans room asks it: with the agents the plan's targets select.
apply_plan(groups) := object.union(req(groups, "apply-plan"), {"targets": [
	{"id": "a-1", "name": "web-1", "labels": {"env": "staging", "role": "web"}},
]})

test_plans_are_read_by_viewers_and_operators if {
	every action in ["list-plans", "get-plan", "get-plan-status", "get-rollout", "list-plan-proposals"] {
		allowed_plainly(req(["viewer"], action))
		decide(req(["viewer"], action)).rules == ["viewer_read"]
		allowed_plainly(req(["operator"], action))
		decide(req(["operator"], action)).rules == ["operator_read"]
	}
}

test_admin_applies_plans if {
	allowed_plainly(apply_plan(["admin"]))
	decide(apply_plan(["admin"])).rules == ["admin_all"]
}

test_plans_on_prod_need_a_second_admin if {
	every action in ["apply-plan", "promote-rollout"] {
		d := decide(on_prod(object.union(apply_plan(["admin"]), {"action": action})))
		d.allow
		d.approvals.count == 1
		d.approvals.groups == ["admin"]
		d.rules == ["admin_all", "prod_plan_one_approval"]
	}
	every action in ["pause-rollout", "abort-rollout", "rollback-plan", "delete-plan"] {
		allowed_plainly(on_prod(object.union(apply_plan(["admin"]), {"action": action})))
	}
}

test_plans_are_applied_by_those_who_apply_workflows if {
	every groups in [["viewer"], ["operator"], ["admin"], ["guests"]] {
		decide(apply_plan(groups)).allow == decide(req(groups, "apply-workflow")).allow
	}
	denied_by(apply_plan(["operator"]), "admin_only")
	decide(apply_plan(["operator"])).reasons == ["apply-plan is reserved to admins (rule: admin_only)"]
	denied_by(apply_plan(["viewer"]), "admin_only")
	denied_by(apply_plan(["guests"]), "default_deny")
}

# ---------------------------------------------------------------------------------------------
# artifacts: read like the fleet, pushed by admins (a plan can make an agent install one)
# ---------------------------------------------------------------------------------------------

test_artifacts_are_read_by_viewers_and_operators if {
	every action in ["list-artifacts", "get-artifact"] {
		decide(req(["viewer"], action)).rules == ["viewer_read"]
		decide(req(["operator"], action)).rules == ["operator_read"]
	}
}

# ---------------------------------------------------------------------------------------------
# metrics: an agent's history is read like the fleet; nobody outside the agent writes it
# ---------------------------------------------------------------------------------------------

test_metrics_are_read_by_viewers_and_operators if {
	every action in ["get-agent-metrics", "list-agent-metrics"] {
		decide(req(["viewer"], action)).rules == ["viewer_read"]
		decide(req(["operator"], action)).rules == ["operator_read"]
	}
	denied_by(req(["guests"], "get-agent-metrics"), "default_deny")
}

# ---------------------------------------------------------------------------------------------
# inventory: the fleet's resources are read like the fleet; only agents report them
# ---------------------------------------------------------------------------------------------

test_resources_are_read_by_viewers_and_operators if {
	every action in ["list-resources", "get-agent-resources"] {
		decide(req(["viewer"], action)).rules == ["viewer_read"]
		decide(req(["operator"], action)).rules == ["operator_read"]
	}
	denied_by(req(["guests"], "list-resources"), "default_deny")
}

test_admins_push_artifacts if {
	decide(req(["admin"], "push-artifact")).rules == ["admin_all"]
	denied_by(req(["operator"], "push-artifact"), "admin_only")
	denied_by(req(["viewer"], "push-artifact"), "admin_only")
	denied_by(req(["guests"], "push-artifact"), "default_deny")
}

# ---------------------------------------------------------------------------------------------
# operator_read, operator_run, operator_manage
# ---------------------------------------------------------------------------------------------

test_operator_reads if {
	every action in read_actions {
		allowed_plainly(req(["operator"], action))
		decide(req(["operator"], action)).rules == ["operator_read"]
	}
}

test_operator_runs_safe_commands if {
	allowed_plainly(run(["operator"], "uptime"))
	decide(run(["operator"], "uptime")).rules == ["operator_run"]
}

test_operator_runs_safe_commands_on_prod_without_approval if {
	allowed_plainly(on_prod(run(["operator"], "uptime")))
}

test_operator_cancels_enrolls_and_reports_unseals if {
	every action in ["cancel-command", "create-enroll-token", "report-unseal"] {
		allowed_plainly(req(["operator"], action))
		decide(req(["operator"], action)).rules == ["operator_manage"]
	}
}

test_operator_unknown_action_falls_to_default_deny if {
	denied_by(req(["operator"], "some-future-action"), "default_deny")
}

# ---------------------------------------------------------------------------------------------
# operator_no_dangerous, shell_run_admin_only
# ---------------------------------------------------------------------------------------------

test_operator_may_not_run_dangerous_commands if {
	denied_by(run_dangerous(["operator"], "reboot"), "operator_no_dangerous")
	denied_by(on_prod(run_dangerous(["operator"], "reboot")), "operator_no_dangerous")
}

test_operator_may_not_run_shell_run if {
	denied_by(run(["operator"], "shell_run"), "shell_run_admin_only")
	denied_by(run_dangerous(["operator"], "shell_run"), "shell_run_admin_only")
}

test_strongest_role_explains if {
	# A viewer who is also an operator hears the operator's refusal, not "viewers may only read".
	denied_by(run_dangerous(["viewer", "operator"], "reboot"), "operator_no_dangerous")
}

test_admin_in_other_groups_still_admin if {
	allowed_plainly(req(["viewer", "admin"], "create-token"))
	allowed_plainly(run_dangerous(["operator", "admin", "guests"], "reboot"))
}

# ---------------------------------------------------------------------------------------------
# default_deny: unknown or missing groups get nothing
# ---------------------------------------------------------------------------------------------

test_unknown_groups_get_nothing if {
	every action in array.concat(read_actions, ["create-command", "get-audit", "create-token"]) {
		denied_by(req(["guests", "contractors"], action), "default_deny")
	}
	decide(req(["guests", "contractors"], "list-agents")).reasons == [
		"no rule allows list-agents for groups [contractors, guests] (rule: default_deny)",
	]
}

test_no_groups_get_nothing if {
	denied_by(req([], "list-agents"), "default_deny")
	denied_by(req(null, "list-agents"), "default_deny")
	decide(req(null, "list-agents")).reasons == ["no rule allows list-agents for groups [] (rule: default_deny)"]
	denied_by({"action": "list-agents"}, "default_deny")
}

# ---------------------------------------------------------------------------------------------
# shell_run_two_admins
# ---------------------------------------------------------------------------------------------

test_admin_shell_run_needs_two_admin_approvals if {
	d := decide(run(["admin"], "shell_run"))
	d.allow == true
	d.reasons == []
	d.approvals.count == 2
	d.approvals.groups == ["admin"]
	contains(d.approvals.reason, "2 admins other than the requester")
	d.rules == ["admin_all", "shell_run_two_admins"]
}

test_shell_run_approvals_only_for_create_command if {
	# Cancelling a shell_run does not need approvals.
	allowed_plainly(object.union(req(["admin"], "cancel-command"), {"command": "shell_run"}))
}

# ---------------------------------------------------------------------------------------------
# prod_dangerous_one_approval
# ---------------------------------------------------------------------------------------------

test_admin_dangerous_on_prod_needs_one_admin_approval if {
	d := decide(on_prod(run_dangerous(["admin"], "reboot")))
	d.allow == true
	d.approvals == {
		"count": 1,
		"groups": ["admin"],
		"reason": "dangerous command on an env=prod agent: 1 admin other than the requester must approve",
	}
	d.rules == ["admin_all", "prod_dangerous_one_approval"]
}

test_prod_approval_only_for_dangerous_commands_on_prod if {
	allowed_plainly(on_prod(run(["admin"], "uptime")))
	allowed_plainly(run_dangerous(["admin"], "reboot"))
	allowed_plainly(object.union(run_dangerous(["admin"], "reboot"), {"targets": [{"id": "a-3", "name": "x", "labels": null}]}))
	allowed_plainly(object.union(run_dangerous(["admin"], "reboot"), {"targets": [{"id": "a-3", "name": "x", "labels": {"env": "production"}}]}))
}

test_shell_run_on_prod_needs_the_stricter_two_approvals if {
	d := decide(on_prod(run_dangerous(["admin"], "shell_run")))
	d.allow == true
	d.approvals.count == 2
	d.rules == ["admin_all", "prod_dangerous_one_approval", "shell_run_two_admins"]
}

# ---------------------------------------------------------------------------------------------
# role: the strongest built-in role, for refusals here and for operators' own rules
# ---------------------------------------------------------------------------------------------

test_role_is_the_strongest_built_in_role if {
	authz.role == "admin" with input as req(["viewer", "admin", "operator"], "list-agents")
	authz.role == "operator" with input as req(["viewer", "operator", "guests"], "list-agents")
	authz.role == "viewer" with input as req(["viewer"], "list-agents")
	not authz.role with input as req(["guests"], "list-agents")
}

# ---------------------------------------------------------------------------------------------
# notifications: channels and the delivery log read like the fleet, channels managed by admins
# (a channel's secrets and where alerts go are an admin's decision)
# ---------------------------------------------------------------------------------------------

test_channels_are_read_by_viewers_and_operators if {
	every action in ["list-channels", "get-channel", "list-notifications"] {
		decide(req(["viewer"], action)).rules == ["viewer_read"]
		decide(req(["operator"], action)).rules == ["operator_read"]
	}
}

test_admins_manage_channels if {
	every action in ["set-channel", "delete-channel", "test-channel"] {
		decide(req(["admin"], action)).rules == ["admin_all"]
		denied_by(req(["operator"], action), "admin_only")
		denied_by(req(["guests"], action), "default_deny")
	}
}
