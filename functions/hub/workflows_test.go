package hub_test

import (
	"fmt"
	"testing"
)

// TestListExecutions: executions newest first, filtered by workflow and status, in pages; a bad cursor
// is refused with the reason.
func TestListExecutions(t *testing.T) {
	th := newTestHub(t)
	ask := func(name string) string {
		return "name: " + name + "\nsteps:\n  - name: Ask\n    type: prompt\n    message: Go on?\n    options: [\"Yes\", \"No\"]\n"
	}
	for _, name := range []string{"ask-a", "ask-b"} {
		var out struct{ Detail string }
		if st := th.call(th.admin, "PUT", "/v1/workflows/"+name, map[string]any{"source": ask(name)}, &out); st != 200 {
			t.Fatalf("apply %s: %d %s", name, st, out.Detail)
		}
	}
	var ids []string
	for _, name := range []string{"ask-a", "ask-b", "ask-a"} {
		var ex struct{ ID, Detail string }
		if st := th.call(th.admin, "POST", "/v1/executions", map[string]any{"workflow": name}, &ex); st != 201 {
			t.Fatalf("start %s: %d %s", name, st, ex.Detail)
		}
		ids = append(ids, ex.ID)
	}
	if st := th.call(th.admin, "POST", "/v1/executions/"+ids[1]+"/cancel", nil, nil); st != 200 {
		t.Fatalf("cancel: %d", st)
	}
	cases := []struct {
		query string
		want  []string
	}{
		{"", []string{ids[2], ids[1], ids[0]}},
		{"?workflow=ask-a", []string{ids[2], ids[0]}},
		{"?status=cancelled", []string{ids[1]}},
		{"?status=running", []string{ids[2], ids[0]}},
		{"?limit=1", []string{ids[2]}},
		{"?limit=1&cursor=" + ids[2], []string{ids[1]}},
	}
	for _, c := range cases {
		var page struct {
			Executions []struct{ ID, Status string }
			Next       string
		}
		if st := th.call(th.admin, "GET", "/v1/executions"+c.query, nil, &page); st != 200 {
			t.Errorf("%s: %d", c.query, st)
			continue
		}
		var got []string
		for _, e := range page.Executions {
			got = append(got, e.ID)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("list %q = %v, want %v", c.query, got, c.want)
		}
	}
	var problem struct {
		Detail string
		Errors []struct{ Location string }
	}
	if st := th.call(th.admin, "GET", "/v1/executions?cursor=nope", nil, &problem); st != 422 || len(problem.Errors) != 1 || problem.Errors[0].Location != "cursor" {
		t.Errorf("unknown cursor: %d %+v", st, problem)
	}
	viewer := th.token("eve", "viewer")
	if st := th.call(viewer, "GET", "/v1/executions", nil, nil); st != 200 {
		t.Errorf("a viewer lists executions: %d, want 200", st)
	}
}
