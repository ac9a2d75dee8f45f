// Package openapi holds the committed OpenAPI documents of the hub API (openapi.yaml, openapi.json and
// the 3.0 downgrade openapi-3.0.yaml) and the test that fails when they drift from what the code
// generates. Regenerate them with `make openapi`; `make generate` also regenerates what is made from
// them: the Go client in client/ (oapi-codegen, from openapi-3.0.yaml) and the TypeScript types in
// ts/ (openapi-typescript, from openapi.yaml), each held to its document by a check that fails when
// it is stale (client/drift_test.go, ts/check.sh run by `make test-ts`).
package openapi
