package workflow

import "github.com/pulsehq/pulse/functions/yamlsrc"

// Problem is one reason a definition is refused, placed so an author can go straight to it.
type Problem = yamlsrc.Problem

// ValidationError is every problem found, not just the first, so one round trip fixes a definition.
// Parse and Validate return it (as error) for anything that is the author's fault.
type ValidationError = yamlsrc.Error

// subject starts the message of a ValidationError.
const subject = "workflow"

// problems collects Problems while walking a definition, placed by the definition's own positions.
type problems struct {
	yamlsrc.Problems
}

func (ps *problems) add(l loc, path, format string, args ...any) {
	ps.Add(l.line, l.col, path, format, args...)
}

func (ps *problems) err() error { return ps.Err(subject) }
