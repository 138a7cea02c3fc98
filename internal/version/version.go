// Package version holds the build's version string, set by the Makefile with
// -ldflags and read by the CLI and the API's status endpoint.
package version

import "runtime/debug"

// Version is the release or git description of this build ("dev" when built
// without the Makefile).
var Version = "dev"

// String is Version, falling back to the module version recorded by the Go
// toolchain when the build did not set one.
func String() string {
	if Version != "dev" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return Version
}
