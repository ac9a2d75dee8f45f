package openapi_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/pulsehq/pulse/functions/hub"
)

// TestCommittedDocumentsMatchCode fails when the committed documents differ from what the handlers
// generate, so clients generated from the repository never describe a different API than the one served.
func TestCommittedDocumentsMatchCode(t *testing.T) {
	docs, err := hub.OpenAPIDocuments()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range docs {
		got, err := os.ReadFile(name)
		if err != nil {
			t.Errorf("%s: %v (run `make openapi`)", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what the code generates; run `make openapi` and commit the result", name)
		}
	}
	if len(docs) != 3 {
		t.Fatalf("expected 3 documents, got %d", len(docs))
	}
}
