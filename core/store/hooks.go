package store

import (
	"errors"
	"net/http"
	"time"
)

// Webhook is a trigger webhook added to a layer.
type Webhook struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created_at"`
}

// InboxItem is a payload webhook received for a source, kept until the
// revision that holds its changes is published.
type InboxItem struct {
	Seq    uint64 `json:"seq"`
	Source string `json:"source"`
	// Connection is the connection of a source with connections the
	// webhook is for.
	Connection string      `json:"connection,omitempty"`
	Method     string      `json:"method"`
	Path       string      `json:"path"`
	Header     http.Header `json:"header"`
	Body       []byte      `json:"body"`
	Received   time.Time   `json:"received_at"`
	Attempts   int         `json:"attempts,omitempty"`
}

// ErrInboxFull is returned by AppendInbox while the layer holds as many
// accepted, unpublished payload webhooks as its limit allows.
var ErrInboxFull = errors.New("store: the webhook inbox is full")
