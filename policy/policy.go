// Package policy decides every operator action on the hub with embedded OPA.
//
// The hub builds an [Input] for each request (who asks, which action, which command on which
// agents) and enforces the [Decision]: deny, allow, or allow only after approvals. The rules
// are Rego: a default bundle compiled into the binary (policy/default) plus the operator's
// own files, which can extend or replace it without a rebuild (see policy/README.md).
//
// The agent never imports this package: OPA belongs to the hub alone.
package policy

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/maphash"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// Query is the one document the hub evaluates. Any policy, default or replacement, must
// define it in the shape of [Decision]; the default builds it in default/decision.rego.
const Query = "data.pulse.authz.decision"

// defaultFS holds the default bundle and its tests; [New] loads everything but the tests.
//
//go:embed default/*.rego
var defaultFS embed.FS

// defaultDir is the folder of defaultFS, and the prefix of the default files' names in
// [Engine.Sources] and in error messages.
const defaultDir = "default"

// Input is what every decision sees: the policy is a pure function of it, so that every hub
// replica decides alike and an audit record holds all it takes to replay a decision.
// Rego reads it as input.<json name>; fields marked omitempty are absent when empty.
type Input struct {
	Principal Principal `json:"principal"`
	// Action is the API operation id, e.g. "create-command", "list-agents", "cancel-command",
	// "approve-command", "create-token", "revoke-token", "create-enroll-token", "get-audit",
	// "report-unseal".
	Action string `json:"action"`
	// Command names the catalog command, for create-command.
	Command string `json:"command,omitempty"`
	// Params are the command's parameters, so a rule can limit what a command is given.
	Params map[string]string `json:"params,omitempty"`
	// Dangerous is set when any target's catalog marks the command dangerous, so the policy
	// need not know the catalogs.
	Dangerous bool     `json:"dangerous,omitempty"`
	Targets   []Target `json:"targets,omitempty"`
	// Time is when the request was made; policies read it instead of a clock so a decision
	// can be replayed. [Engine.Decide] uses the current time when it is zero.
	Time time.Time `json:"time"`
}

// Principal is who asks, as authenticated by the hub; policies decide on groups, not names,
// so that granting a person a role is an identity-provider change, not a policy change.
type Principal struct {
	ID     string   `json:"id"`
	Name   string   `json:"name,omitempty"`
	Groups []string `json:"groups"`
	// Via says how the principal authenticated: "token", "oidc" or "forward-auth", so a
	// policy can, for example, keep long-lived tokens from risky actions.
	Via string `json:"via"`
}

// Target is one agent the action would touch; labels let a policy treat, say, env=prod
// differently from the rest of the fleet.
type Target struct {
	ID     string            `json:"id"`
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
}

// Decision is what the hub enforces and records in the audit trail.
type Decision struct {
	Allow bool `json:"allow"`
	// Reasons say, for a denial, which rule denied and why, in words a person can act on,
	// e.g. "viewers may only read (rule: viewer_read_only)".
	Reasons []string `json:"reasons,omitempty"`
	// Approvals is non-nil when the action is allowed only after others approve it.
	Approvals *Approvals `json:"approvals,omitempty"`
	// Rules names every rule that shaped the decision, so the audit record shows why.
	Rules []string `json:"rules,omitempty"`
}

// Approvals is a four-eyes requirement: Count distinct people, each in at least one of
// Groups, must approve before the action runs. The hub never counts the requester.
type Approvals struct {
	Count  int      `json:"count"`
	Groups []string `json:"groups"`
	Reason string   `json:"reason"`
}

// Engine holds the compiled, prepared policy. Compiling takes long and evaluating must not,
// so an Engine is built once and shared; it is safe for concurrent use. To change policy,
// build a new Engine and swap it in.
type Engine struct {
	query   rego.PreparedEvalQuery
	sources map[string]string
}

// New compiles and prepares the default bundle together with every *.rego file directly in
// extraDir (none when extraDir is ""). A file in extraDir in package pulse.authz adds rules
// to the default; one with the same name as a default file (rules.rego, decision.rego)
// replaces it. Files ending in _test.rego and files whose name starts with "." are skipped.
// Errors name the file and line.
func New(ctx context.Context, extraDir string) (*Engine, error) {
	sources, err := loadSources(extraDir)
	if err != nil {
		return nil, err
	}
	modules, err := parseModules(sources)
	if err != nil {
		return nil, err
	}

	compiler := newCompiler()
	if compiler.Compile(modules); compiler.Failed() {
		return nil, fmt.Errorf("policy: compile: %w", compiler.Errors)
	}
	pq, err := rego.New(rego.Query(Query), rego.Compiler(compiler)).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("policy: prepare %s: %w", Query, err)
	}
	e := &Engine{query: pq, sources: sources}

	// Fail at start-up rather than on the first request when a replacement policy does not
	// produce a decision at all.
	probe := Input{Principal: Principal{ID: "probe", Groups: []string{}}, Action: "list-agents"}
	if _, err := e.decide(ctx, probe); err != nil {
		return nil, fmt.Errorf("policy: probe decision at start-up: %w", err)
	}
	return e, nil
}

// Decide evaluates the policy for one request. An error means the policy could not decide
// (a broken custom policy, a cancelled context); the hub must then deny.
func (e *Engine) Decide(ctx context.Context, in Input) (Decision, error) {
	d, err := e.decide(ctx, in)
	if err != nil {
		return Decision{}, fmt.Errorf("policy: %w", err)
	}
	return d, nil
}

func (e *Engine) decide(ctx context.Context, in Input) (Decision, error) {
	if in.Action == "" {
		return Decision{}, errors.New("input has no action")
	}
	if err := ctx.Err(); err != nil {
		return Decision{}, fmt.Errorf("decide %s: %w", in.Action, err)
	}
	if in.Time.IsZero() {
		in.Time = time.Now()
	}
	rs, err := e.query.Eval(ctx, rego.EvalParsedInput(inputValue(in)))
	if err != nil {
		return Decision{}, fmt.Errorf("evaluate %s: %w", in.Action, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return Decision{}, fmt.Errorf("%s is undefined for %s; a replacement policy must define it", Query, in.Action)
	}
	d, err := decodeDecision(rs[0].Expressions[0].Value)
	if err != nil {
		return Decision{}, fmt.Errorf("%s for %s: %w", Query, in.Action, err)
	}
	return d, nil
}

// Sources returns the policy files that were loaded (name -> text), so the hub can record
// in the audit trail exactly which policy decided. Default files are named default/<file>,
// operator files by their path. The map is a copy.
func (e *Engine) Sources() map[string]string {
	return maps.Clone(e.sources)
}

// newCompiler is the compiler both the Engine and the Rego tests use.
func newCompiler() *ast.Compiler {
	return ast.NewCompiler().
		WithCapabilities(Capabilities()).
		WithDefaultRegoVersion(ast.RegoV1)
}

// Capabilities are the Rego built-ins a policy may call: all of this OPA version's except the
// non-deterministic ones (http.send, time.now_ns, rand.intn, ...). A decision then depends on
// the input alone, never stalls a request on the network, and replays the same from an
// audit record; policies read the clock from input.time.
func Capabilities() *ast.Capabilities {
	caps := ast.CapabilitiesForThisVersion()
	caps.Builtins = slices.DeleteFunc(caps.Builtins, func(b *ast.Builtin) bool { return b.Nondeterministic })
	return caps
}

// DefaultSources returns the embedded default bundle (name -> text), tests included, so
// tests and tools can run them as shipped.
func DefaultSources() (map[string]string, error) {
	out := map[string]string{}
	entries, err := fs.ReadDir(defaultFS, defaultDir)
	if err != nil {
		return nil, fmt.Errorf("policy: read default bundle: %w", err)
	}
	for _, ent := range entries {
		if ent.IsDir() || !strings.HasSuffix(ent.Name(), ".rego") {
			continue
		}
		name := path.Join(defaultDir, ent.Name())
		b, err := defaultFS.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("policy: read default %s: %w", name, err)
		}
		out[name] = string(b)
	}
	return out, nil
}

// loadSources collects the default bundle (without tests) and the operator's files, an
// operator file replacing the default file of the same name.
func loadSources(extraDir string) (map[string]string, error) {
	all, err := DefaultSources()
	if err != nil {
		return nil, err
	}
	sources := map[string]string{}
	for name, text := range all {
		if !isTest(name) {
			sources[name] = text
		}
	}
	if extraDir == "" {
		return sources, nil
	}

	entries, err := os.ReadDir(extraDir)
	if err != nil {
		return nil, fmt.Errorf("policy: read policy dir: %w", err)
	}
	for _, ent := range entries {
		base := ent.Name()
		// Dot files are skipped: Kubernetes mounts a ConfigMap as ..data/ plus symlinks.
		if !strings.HasSuffix(base, ".rego") || isTest(base) || strings.HasPrefix(base, ".") {
			continue
		}
		p := filepath.Join(extraDir, base)
		info, err := os.Stat(p) // follows symlinks
		if err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		if !info.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		delete(sources, path.Join(defaultDir, base))
		sources[p] = string(b)
	}
	return sources, nil
}

func isTest(name string) bool { return strings.HasSuffix(name, "_test.rego") }

// parseModules parses every source as Rego v1. Parse errors carry file:line from the names;
// all of them are reported at once, in name order.
func parseModules(sources map[string]string) (map[string]*ast.Module, error) {
	modules := make(map[string]*ast.Module, len(sources))
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(sources)) {
		m, err := ast.ParseModuleWithOpts(name, sources[name], ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		modules[name] = m
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("policy: parse: %w", errors.Join(errs...))
	}
	return modules, nil
}

// inputValue builds the Rego input straight from in, without a JSON round trip, which would
// dominate Decide with thousands of targets. The result equals what json.Marshal(in) gives.
func inputValue(in Input) ast.Value {
	var b termBuilder
	principal := ast.NewObject(ast.Item(keyID, ast.StringTerm(in.Principal.ID)))
	if in.Principal.Name != "" {
		principal.Insert(keyName, ast.StringTerm(in.Principal.Name))
	}
	principal.Insert(keyGroups, b.strings(in.Principal.Groups))
	principal.Insert(keyVia, ast.StringTerm(in.Principal.Via))

	obj := ast.NewObject(
		ast.Item(keyPrincipal, ast.NewTerm(principal)),
		ast.Item(keyAction, ast.StringTerm(in.Action)),
	)
	if in.Command != "" {
		obj.Insert(keyCommand, ast.StringTerm(in.Command))
	}
	if len(in.Params) > 0 {
		obj.Insert(keyParams, b.stringMap(in.Params))
	}
	if in.Dangerous {
		obj.Insert(keyDangerous, ast.InternedTerm(true))
	}
	if len(in.Targets) > 0 {
		obj.Insert(keyTargets, b.targets(in.Targets))
	}
	obj.Insert(keyTime, ast.StringTerm(in.Time.Format(time.RFC3339Nano)))
	return obj
}

// The input's keys, built once: terms are immutable once built, so every input shares them.
var (
	keyPrincipal = ast.StringTerm("principal")
	keyID        = ast.StringTerm("id")
	keyName      = ast.StringTerm("name")
	keyGroups    = ast.StringTerm("groups")
	keyVia       = ast.StringTerm("via")
	keyAction    = ast.StringTerm("action")
	keyCommand   = ast.StringTerm("command")
	keyParams    = ast.StringTerm("params")
	keyDangerous = ast.StringTerm("dangerous")
	keyTargets   = ast.StringTerm("targets")
	keyLabels    = ast.StringTerm("labels")
	keyTime      = ast.StringTerm("time")
)

// termBuilder converts one input. A thousand agents mostly share a handful of label sets,
// so it builds each distinct string and each distinct label set once: allocation is most of
// the cost of a decision, and Rego terms are immutable, so sharing them is safe.
type termBuilder struct {
	strs      map[string]*ast.Term
	labelSets map[uint64][]labelSet // by labelHash
}

type labelSet struct {
	labels map[string]string
	term   *ast.Term
}

var hashSeed = maphash.MakeSeed()

// labelHash does not depend on the order of the map's entries, so equal maps hash alike.
func labelHash(m map[string]string) uint64 {
	var h uint64
	for k, v := range m {
		h += maphash.String(hashSeed, k)*31 ^ maphash.String(hashSeed, v)
	}
	return h
}

func (b *termBuilder) str(s string) *ast.Term {
	if t, ok := b.strs[s]; ok {
		return t
	}
	if b.strs == nil {
		b.strs = make(map[string]*ast.Term, 64)
	}
	t := ast.StringTerm(s)
	b.strs[s] = t
	return t
}

// strings mirrors encoding/json: a nil slice is null.
func (b *termBuilder) strings(ss []string) *ast.Term {
	if ss == nil {
		return ast.NullTerm()
	}
	terms := make([]*ast.Term, len(ss))
	for i, s := range ss {
		terms[i] = b.str(s)
	}
	return ast.ArrayTerm(terms...)
}

// stringMap mirrors encoding/json: a nil map is null.
func (b *termBuilder) stringMap(m map[string]string) *ast.Term {
	if m == nil {
		return ast.NullTerm()
	}
	items := make([][2]*ast.Term, 0, len(m))
	for k, v := range m {
		items = append(items, ast.Item(b.str(k), b.str(v)))
	}
	return ast.ObjectTerm(items...)
}

// labels is stringMap, shared between agents with equal labels.
func (b *termBuilder) labels(m map[string]string) *ast.Term {
	if m == nil {
		return ast.NullTerm()
	}
	h := labelHash(m)
	for _, ls := range b.labelSets[h] {
		if maps.Equal(ls.labels, m) {
			return ls.term
		}
	}
	if b.labelSets == nil {
		b.labelSets = make(map[uint64][]labelSet, 16)
	}
	t := b.stringMap(m)
	b.labelSets[h] = append(b.labelSets[h], labelSet{labels: m, term: t})
	return t
}

// targets allocates the targets' own terms in two blocks rather than three per agent.
func (b *termBuilder) targets(ts []Target) *ast.Term {
	elems := make([]*ast.Term, len(ts))
	terms := make([]ast.Term, 3*len(ts)) // per agent: the object, its id, its name
	for i, t := range ts {
		id, name, target := &terms[3*i], &terms[3*i+1], &terms[3*i+2]
		id.Value = ast.String(t.ID)
		name.Value = ast.String(t.Name)
		target.Value = ast.NewObject(
			ast.Item(keyID, id),
			ast.Item(keyName, name),
			ast.Item(keyLabels, b.labels(t.Labels)),
		)
		elems[i] = target
	}
	return ast.ArrayTerm(elems...)
}

// decodeDecision checks the shape a policy returned. Anything unexpected is an error rather
// than a guess, because the hub denies on error.
func decodeDecision(v any) (Decision, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return Decision{}, fmt.Errorf("want an object, got %T", v)
	}
	var d Decision
	if d.Allow, ok = obj["allow"].(bool); !ok {
		return Decision{}, fmt.Errorf("allow: want a boolean, got %T", obj["allow"])
	}
	var err error
	if d.Reasons, err = stringList(obj["reasons"]); err != nil {
		return Decision{}, fmt.Errorf("reasons: %w", err)
	}
	if d.Rules, err = stringList(obj["rules"]); err != nil {
		return Decision{}, fmt.Errorf("rules: %w", err)
	}
	if raw := obj["approvals"]; raw != nil {
		a, err := decodeApprovals(raw)
		if err != nil {
			return Decision{}, fmt.Errorf("approvals: %w", err)
		}
		d.Approvals = a
	}
	return d, nil
}

func decodeApprovals(v any) (*Approvals, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("want an object or null, got %T", v)
	}
	var a Approvals
	n, ok := obj["count"].(interface{ Int64() (int64, error) })
	if !ok {
		return nil, fmt.Errorf("count: want a number, got %T", obj["count"])
	}
	count, err := n.Int64()
	if err != nil || count < 1 {
		return nil, fmt.Errorf("count: want a whole number of at least 1, got %v", obj["count"])
	}
	a.Count = int(count)
	if a.Groups, err = stringList(obj["groups"]); err != nil {
		return nil, fmt.Errorf("groups: %w", err)
	}
	if len(a.Groups) == 0 {
		return nil, errors.New("groups: want at least one group that may approve")
	}
	if obj["reason"] != nil {
		if a.Reason, ok = obj["reason"].(string); !ok {
			return nil, fmt.Errorf("reason: want a string, got %T", obj["reason"])
		}
	}
	return &a, nil
}

// stringList accepts a missing value, null, or an array of strings (a Rego set arrives as
// an array too).
func stringList(v any) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("want an array of strings, got %T", v)
	}
	if len(arr) == 0 {
		return nil, nil
	}
	out := make([]string, len(arr))
	for i, x := range arr {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("item %d: want a string, got %T", i, x)
		}
		out[i] = s
	}
	return out, nil
}
