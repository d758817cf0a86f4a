package api

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A client that stops reading a records answer cannot hold the handler
// (and the store iterator behind it): each chunk must be written within
// recordsWriteTimeout.
func TestSlowReaderIsCutOff(t *testing.T) {
	old := recordsWriteTimeout
	recordsWriteTimeout = 200 * time.Millisecond
	defer func() { recordsWriteTimeout = old }()
	done := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bw := bufio.NewWriterSize(deadlineWriter{w: w, rc: http.NewResponseController(w)}, 64<<10)
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		var err error
		for i := 0; i < 4096 && err == nil; i++ { // 256 MiB: far more than socket buffers
			_, err = bw.Write(chunk)
		}
		done <- err
	}))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	// Read nothing.
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the handler wrote 256 MiB to a client that reads nothing")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the handler is still writing to a client that reads nothing")
	}
}
