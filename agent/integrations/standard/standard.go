// Package standard is the manifest of the integrations built into the agent. Importing it registers
// them; adding an integration to the agent is one line here, and the kernel never changes for it.
// Test-only integrations never belong here.
package standard

import (
	_ "github.com/pulsehq/pulse/agent/integrations/container"  // plan units of type container: Docker containers from images the config allows
	_ "github.com/pulsehq/pulse/agent/integrations/exec"       // operator-defined commands from the agent's TOML
	_ "github.com/pulsehq/pulse/agent/integrations/files"      // plan units of type file, under the roots the config allows
	_ "github.com/pulsehq/pulse/agent/integrations/host"       // host facts and basic metrics
	_ "github.com/pulsehq/pulse/agent/integrations/process"    // plan units of type process: supervised programs the config allows
	_ "github.com/pulsehq/pulse/agent/integrations/selfupdate" // plan units of type agent: the agent's own binary, swapped after a self-test and rolled back unless the hub hears from it
	_ "github.com/pulsehq/pulse/agent/integrations/shell"      // the sealed hatch: opaque shell, opened on the host
)
