// Package aws holds the CloudFormation/SAM template of the cloud-function deployment; its test checks
// the template against what the code needs.
package aws

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/awslabs/goformation/v7"
	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/intrinsics"

	"github.com/pulsehq/pulse/functions/lambdahub"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store/awss3"
)

// open parses the template with the intrinsic functions kept recognisable: Ref X as "ref:X" (a Number
// parameter as its default),
// GetAtt X.Y as "getatt:X.Y", and Sub as its template string (so "${Bucket}" stays in it).
func open(t *testing.T) *cloudformation.Template {
	t.Helper()
	tpl, err := goformation.OpenWithOptions("template.yaml", &intrinsics.ProcessorOptions{IntrinsicHandlerOverrides: map[string]intrinsics.IntrinsicHandler{
		"Ref": func(_ string, in any, tpl any) any {
			// A Number parameter resolves to its default, which a numeric property needs.
			if m, ok := tpl.(map[string]any); ok {
				if ps, ok := m["Parameters"].(map[string]any); ok {
					if p, ok := ps[fmt.Sprint(in)].(map[string]any); ok && p["Type"] == "Number" {
						return p["Default"]
					}
				}
			}
			return fmt.Sprintf("ref:%v", in)
		},
		"Fn::GetAtt": func(_ string, in any, _ any) any {
			if l, ok := in.([]any); ok && len(l) == 2 {
				return fmt.Sprintf("getatt:%v.%v", l[0], l[1])
			}
			return fmt.Sprintf("getatt:%v", in)
		},
		"Fn::Sub": func(_ string, in any, _ any) any { return in },
	}})
	if err != nil {
		t.Fatalf("infra/aws/template.yaml: %v", err)
	}
	return tpl
}

// TestTemplateHasWhatTheCodeExpects: the bucket with lifecycle rules for every short-lived prefix,
// the API function behind a streaming function URL, the tick function on a one-minute schedule
// ticking for less than its timeout, both running the function binary in function mode on that
// bucket with the key from the secret.
func TestTemplateHasWhatTheCodeExpects(t *testing.T) {
	tpl := open(t)
	b, err := tpl.GetS3BucketWithName("Bucket")
	if err != nil {
		t.Fatal(err)
	}
	expiring := map[string]bool{}
	for _, r := range b.LifecycleConfiguration.Rules {
		if r.Prefix != nil && r.ExpirationInDays != nil && r.Status == "Enabled" {
			expiring[*r.Prefix] = true
		}
	}
	for _, p := range []string{layout.Bells, layout.Deliveries, layout.Probe} {
		if !expiring[p] {
			t.Errorf("no lifecycle rule expires %s", p)
		}
	}
	if pab := b.PublicAccessBlockConfiguration; pab == nil || pab.BlockPublicAcls == nil || !*pab.BlockPublicAcls || pab.RestrictPublicBuckets == nil || !*pab.RestrictPublicBuckets {
		t.Error("the bucket does not block public access")
	}

	for name, role := range map[string]string{"ApiFunction": "api", "TickFunction": "tick"} {
		f, err := tpl.GetServerlessFunctionWithName(name)
		if err != nil {
			t.Fatal(err)
		}
		if deref(f.Runtime) != "provided.al2023" || deref(f.Handler) != "bootstrap" || deref(f.Role) != "getatt:HubRole.Arn" {
			t.Errorf("%s: runtime %q handler %q role %q", name, deref(f.Runtime), deref(f.Handler), deref(f.Role))
		}
		env := f.Environment.Variables
		if env["PULSE_FUNCTION"] != role || env["PULSE_SIGNING_KEY_SECRET"] != "ref:SigningKeySecretArn" ||
			!strings.HasPrefix(env["PULSE_STORE"], "awss3://${Bucket}?") || env["PULSE_POLL_EVERY"] != "ref:PollEvery" {
			t.Errorf("%s environment: %v", name, env)
		}
		for k := range env {
			if k == "PULSE_SIGNING_KEY" {
				t.Errorf("%s puts the signing key itself in its environment", name)
			}
		}
	}
	api, _ := tpl.GetServerlessFunctionWithName("ApiFunction")
	if u := api.FunctionUrlConfig; u == nil || deref(u.InvokeMode) != "RESPONSE_STREAM" || u.AuthType != "NONE" {
		t.Errorf("the API function's URL: %+v; want AuthType NONE (the hub authenticates) and InvokeMode RESPONSE_STREAM", u)
	}
	if api.Timeout == nil || *api.Timeout < 300 {
		t.Errorf("the API function's timeout %v s: event streams end at it", api.Timeout)
	}
	tick, _ := tpl.GetServerlessFunctionWithName("TickFunction")
	span, err := time.ParseDuration(tick.Environment.Variables["PULSE_TICK_FOR"])
	if err != nil || tick.Timeout == nil || time.Duration(*tick.Timeout)*time.Second < span+10*time.Second || span < 50*time.Second {
		t.Errorf("the tick function ticks for %s with a %v s timeout (%v): want just under a minute, well within the timeout", span, tick.Timeout, err)
	}
	s, err := tpl.GetSchedulerScheduleWithName("TickSchedule")
	if err != nil {
		t.Fatal(err)
	}
	if s.ScheduleExpression != "rate(1 minute)" || s.Target == nil || s.Target.Arn != "getatt:TickFunction.Arn" || s.Target.RoleArn != "getatt:SchedulerRole.Arn" {
		t.Errorf("the schedule: %q %+v", s.ScheduleExpression, s.Target)
	}
	if _, ok := tpl.Outputs["HubURL"]; !ok {
		t.Error("no HubURL output")
	}
}

// statement is one IAM policy statement as the template writes it.
type statement struct {
	actions, resources []string
	condition          any
}

func statements(t *testing.T, tpl *cloudformation.Template, role string) []statement {
	t.Helper()
	r, err := tpl.GetIAMRoleWithName(role)
	if err != nil {
		t.Fatal(err)
	}
	var out []statement
	for _, p := range r.Policies {
		doc, _ := p.PolicyDocument.(map[string]any)
		list, _ := doc["Statement"].([]any)
		for _, s := range list {
			m, _ := s.(map[string]any)
			if m["Effect"] != "Allow" {
				t.Errorf("%s: a statement with effect %v", role, m["Effect"])
			}
			out = append(out, statement{actions: strs(m["Action"]), resources: strs(m["Resource"]), condition: m["Condition"]})
		}
	}
	return out
}

func strs(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, fmt.Sprint(e))
		}
		return out
	}
	return []string{fmt.Sprint(v)}
}

// TestTemplateGrantsLeastPrivilege: the hub's role grants every action the code calls (the awss3
// backend's and the key loader's, plus writing its logs) and no other, none with a wildcard, each on
// the bucket's v1/ prefix, the secret or the stack's own log groups only; the scheduler's role may
// invoke the tick function and nothing else.
func TestTemplateGrantsLeastPrivilege(t *testing.T) {
	tpl := open(t)
	want := append(append(slices.Clone(awss3.IAMActions), lambdahub.IAMActions...), "logs:CreateLogStream", "logs:PutLogEvents")
	objects := "arn:${AWS::Partition}:s3:::${Bucket}/" + strings.TrimSuffix(layout.Agents, "agents/") + "*"
	var got []string
	for _, s := range statements(t, tpl, "HubRole") {
		for _, a := range s.actions {
			got = append(got, a)
			if strings.Contains(a, "*") {
				t.Errorf("wildcard action %s", a)
			}
			var ok bool
			for _, r := range s.resources {
				switch {
				case a == "s3:ListBucket":
					ok = r == "arn:${AWS::Partition}:s3:::${Bucket}" && fmt.Sprint(s.condition) == "map[StringLike:map[s3:prefix:v1/*]]"
				case strings.HasPrefix(a, "s3:"):
					ok = r == objects
				case strings.HasPrefix(a, "secretsmanager:"):
					ok = r == "ref:SigningKeySecretArn"
				case strings.HasPrefix(a, "logs:"):
					ok = strings.HasPrefix(r, "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/${AWS::StackName}-")
				}
				if !ok {
					t.Errorf("%s granted on %s (condition %v): broader than the hub needs", a, r, s.condition)
				}
			}
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("the hub's role grants %v; the code calls %v", got, want)
	}
	sched := statements(t, tpl, "SchedulerRole")
	if len(sched) != 1 || !slices.Equal(sched[0].actions, []string{"lambda:InvokeFunction"}) || !slices.Equal(sched[0].resources, []string{"getatt:TickFunction.Arn"}) {
		t.Errorf("the scheduler's role: %+v; want lambda:InvokeFunction on the tick function only", sched)
	}
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
