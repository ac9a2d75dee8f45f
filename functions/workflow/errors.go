package workflow

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Problem is one reason a definition is refused, placed so an author can go straight to it.
type Problem struct {
	// Line and Column are 1-based positions in the source; 0 when unknown (YAML syntax errors carry a
	// line only).
	Line   int `json:"line"`
	Column int `json:"column"`
	// Path names the value, e.g. "steps[2].condition" or "steps[3].branches[0].steps[1].command".
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
}

// String renders "line:column: path: message", the form editors and CI annotate.
func (p Problem) String() string {
	var b strings.Builder
	switch {
	case p.Line > 0 && p.Column > 0:
		fmt.Fprintf(&b, "%d:%d: ", p.Line, p.Column)
	case p.Line > 0:
		fmt.Fprintf(&b, "%d: ", p.Line)
	}
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// ValidationError is every problem found, not just the first, so one round trip fixes a definition.
// Parse and Validate return it (as error) for anything that is the author's fault.
type ValidationError struct {
	Problems []Problem `json:"problems"`
}

// Error lists the problems one per line, in source order.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return "workflow refused:\n" + strings.Join(lines, "\n")
}

// problems collects Problems while walking a definition.
type problems struct {
	list []Problem
}

func (ps *problems) add(l loc, path, format string, args ...any) {
	ps.list = append(ps.list, Problem{Line: l.line, Column: l.col, Path: path, Message: fmt.Sprintf(format, args...)})
}

func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	slices.SortStableFunc(ps.list, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return &ValidationError{Problems: ps.list}
}
