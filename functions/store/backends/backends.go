// Package backends links in every standard store backend. Entrypoints import it once, for its side
// effect of registering the URL schemes, as Caddy's standard-modules file does: adding a backend is one
// line here, and nothing else in the hub names a backend.
package backends

import (
	_ "github.com/pulsehq/pulse/functions/store/awss3"         // awss3:// (aws-sdk-go-v2)
	_ "github.com/pulsehq/pulse/functions/store/local"         // file://
	_ "github.com/pulsehq/pulse/functions/store/s3"            // s3://
	_ "github.com/pulsehq/pulse/functions/store/unconditional" // unconditional+file://, unconditional+s3://
)
