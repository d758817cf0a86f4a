package main

import (
	"testing"

	"github.com/synclayer/synclayer/plugin-sdk/sdktest"
)

func TestAcceptance(t *testing.T) {
	sdktest.Acceptance{
		Config: map[string]any{"records": 2500, "payload_bytes": 100, "models": []string{"A", "B"}},
	}.Run(t, &Generator{})
}
