// Package openapi holds the committed OpenAPI documents of the hub API (openapi.yaml, openapi.json and
// the 3.0 downgrade openapi-3.0.yaml) and the test that fails when they drift from what the code
// generates. Regenerate them with `make openapi`.
package openapi
