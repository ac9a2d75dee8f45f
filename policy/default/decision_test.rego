# Tests of decision.rego: how grants, refusals and approvals combine, whatever rules fill them.
# The rule sets are replaced with `with`, as an operator's own rules would replace them.
package pulse.authz_test

import data.pulse.authz

base := {"principal": {"id": "u-1", "groups": ["sre"], "via": "oidc"}, "action": "create-command"}

test_a_grant_allows if {
	d := authz.decision with input as base
		with data.pulse.authz.allow as {"sre_run"}
		with data.pulse.authz.deny as set()
		with data.pulse.authz.approval as set()
	d == {"allow": true, "reasons": [], "approvals": null, "rules": ["sre_run"]}
}

test_a_refusal_wins_over_every_grant if {
	d := authz.decision with input as base
		with data.pulse.authz.allow as {"sre_run", "admin_all"}
		with data.pulse.authz.deny as {"change freeze until Monday (rule: freeze)", "no reason given"}
		with data.pulse.authz.approval as {{"rule": "two_eyes", "count": 1, "groups": ["sre"], "reason": "r"}}
	d.allow == false
	d.reasons == ["change freeze until Monday (rule: freeze)", "no reason given"]
	d.approvals == null

	# Granting rules are listed for the audit, approvals are not (they do not apply to a denial),
	# and a message without "(rule: ...)" names no rule.
	d.rules == ["admin_all", "freeze", "sre_run"]
}

test_no_grant_is_default_deny if {
	d := authz.decision with input as base
		with data.pulse.authz.allow as set()
		with data.pulse.authz.deny as set()
		with data.pulse.authz.approval as set()
	d == {
		"allow": false,
		"reasons": ["no rule allows create-command for groups [sre] (rule: default_deny)"],
		"approvals": null,
		"rules": ["default_deny"],
	}
}

test_the_most_demanding_approval_wins if {
	d := authz.decision with input as base
		with data.pulse.authz.allow as {"sre_run"}
		with data.pulse.authz.deny as set()
		with data.pulse.authz.approval as {
			{"rule": "one", "count": 1, "groups": ["admin"], "reason": "one admin"},
			{"rule": "three", "count": 3, "groups": ["sre", "admin"], "reason": "three people"},
			{"rule": "two", "count": 2, "groups": ["admin"], "reason": "two admins"},
		}
	d.allow == true
	d.approvals == {"count": 3, "groups": ["sre", "admin"], "reason": "three people"}
	d.rules == ["one", "sre_run", "three", "two"]
}

test_equally_demanding_approvals_pick_one_deterministically if {
	reqs := {
		{"rule": "b", "count": 2, "groups": ["sre"], "reason": "b"},
		{"rule": "a", "count": 2, "groups": ["admin"], "reason": "a"},
	}
	d := authz.decision with input as base
		with data.pulse.authz.allow as {"sre_run"}
		with data.pulse.authz.deny as set()
		with data.pulse.authz.approval as reqs
	d.approvals == {"count": 2, "groups": ["admin"], "reason": "a"}
}
