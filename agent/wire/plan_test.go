package wire

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func unit(name, typ string, requires ...string) Unit {
	return Unit{Name: name, Type: typ, Requires: requires, Spec: json.RawMessage(`{}`)}
}

func TestPlanValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		plan Plan
		want string // "" for valid
	}{
		{"valid", Plan{Name: "web", Version: 1, Units: []Unit{unit("conf", "file"), unit("app", "process", "conf")}}, ""},
		{"report mode", Plan{Name: "web", Version: 2, Mode: ModeReport, Units: []Unit{unit("conf", "file")}}, ""},
		{"bad name", Plan{Name: "Web!", Version: 1, Units: []Unit{unit("conf", "file")}}, "name"},
		{"version 0", Plan{Name: "web", Units: []Unit{unit("conf", "file")}}, "versions count from 1"},
		{"bad mode", Plan{Name: "web", Version: 1, Mode: "fix", Units: []Unit{unit("conf", "file")}}, "mode"},
		{"no units", Plan{Name: "web", Version: 1}, "no units"},
		{"duplicate unit", Plan{Name: "web", Version: 1, Units: []Unit{unit("conf", "file"), unit("conf", "file")}}, "defined twice"},
		{"unknown requirement", Plan{Name: "web", Version: 1, Units: []Unit{unit("app", "process", "conf")}}, "does not define"},
		{"unknown notify", Plan{Name: "web", Version: 1, Units: []Unit{{Name: "conf", Type: "file", Notify: []string{"app"}, Spec: json.RawMessage(`{}`)}}}, "does not define"},
		{"requires itself", Plan{Name: "web", Version: 1, Units: []Unit{unit("app", "process", "app")}}, "names itself"},
		{"cycle", Plan{Name: "web", Version: 1, Units: []Unit{unit("a", "file", "c"), unit("b", "file", "a"), unit("c", "file", "b")}}, "a → c → b → a"},
		{"no spec", Plan{Name: "web", Version: 1, Units: []Unit{{Name: "conf", Type: "file"}}}, "spec"},
		{"negative deadline", Plan{Name: "web", Version: 1, Units: []Unit{{Name: "conf", Type: "file", DeadlineSeconds: -1, Spec: json.RawMessage(`{}`)}}}, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.plan.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !errors.Is(err, ErrBadPlan) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want a bad plan mentioning %q", err, tc.want)
			}
		})
	}
}

func TestPlanOrder(t *testing.T) {
	p := Plan{Name: "web", Version: 1, Units: []Unit{unit("app", "process", "conf", "dir"), unit("dir", "file"), unit("conf", "file", "dir"), unit("other", "file")}}
	order, err := p.Order()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range order {
		names = append(names, u.Name)
	}
	if got := strings.Join(names, ","); got != "dir,conf,app,other" {
		t.Errorf("order %s, want dir,conf,app,other", got)
	}
}

func TestUnitDigest(t *testing.T) {
	a := Unit{Name: "conf", Type: "file", Spec: json.RawMessage(`{"content":"a"}`)}
	b := a
	b.Spec = json.RawMessage(`{"content":"b"}`)
	if a.Digest() == b.Digest() || a.Digest() != a.Digest() || !strings.HasPrefix(a.Digest(), "sha256:") {
		t.Errorf("digests %s %s", a.Digest(), b.Digest())
	}
}
