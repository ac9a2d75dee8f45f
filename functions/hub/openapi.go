package hub

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// APIVersion is the version of the API contract written into the OpenAPI document. It is not the
// binary's version, so the committed document does not change with every build.
const APIVersion = "0.1.0"

// OpenAPIDocuments renders the API's OpenAPI documents as they are committed under openapi/: the 3.1
// document in YAML and JSON, and a 3.0 downgrade for generators that do not read 3.1 yet.
func OpenAPIDocuments() (map[string][]byte, error) {
	api := NewAPI(http.NewServeMux(), assemble(nil, nil, nil, APIVersion))
	doc := api.OpenAPI()
	y31, err := doc.YAML()
	if err != nil {
		return nil, fmt.Errorf("openapi 3.1 yaml: %w", err)
	}
	j31, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("openapi 3.1 json: %w", err)
	}
	y30, err := doc.DowngradeYAML()
	if err != nil {
		return nil, fmt.Errorf("openapi 3.0 yaml: %w", err)
	}
	return map[string][]byte{
		"openapi.yaml":     y31,
		"openapi.json":     append(j31, '\n'),
		"openapi-3.0.yaml": y30,
	}, nil
}
