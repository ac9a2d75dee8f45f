// Package agent is the root of everything the Pulse agent trusts: one folder is the whole audit of
// what runs with the agent's privileges on every machine. Nothing under it may import the hub
// (functions/), the policy engine (policy/) or their heavy dependencies; deps_test.go enforces it.
package agent
