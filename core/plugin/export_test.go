package plugin

// LaunchTLS exposes launchTLS to the external tests.
var LaunchTLS = launchTLS
