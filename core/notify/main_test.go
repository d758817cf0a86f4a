package notify_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test stops its Notifier: no delivery loop, attempt or prune loop
// may outlive it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Keep-alive connections of the HTTP client and of httptest
		// servers close on their own schedule.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}
