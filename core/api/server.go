package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// Limits bound what clients can hold of the server: connections, and the
// time they may take to send a request. Zero fields take the defaults
// below.
//
// A connection is served from the main pool while fewer than
// MaxConnections are open. Past that, up to ReserveConnections more are
// accepted into a reserve that answers only GET /healthz, /readyz and
// /metrics (anything else gets 503 at once) and lives at most
// ReserveTimeout; past both, a connection gets a 503 and is closed. So a
// flood of slow clients cannot take every file descriptor, and health
// checks keep being answered through it.
//
// Request headers must arrive within ReadHeaderTimeout. A body is paced
// rather than given a total deadline, so that large uploads on slow links
// still work: no pause may last longer than BodyIdleTimeout, and after
// BodyGrace the body must have come at BodyMinRate bytes per second on
// average.
type Limits struct {
	MaxConnections     int
	ReserveConnections int
	ReserveTimeout     time.Duration
	ReadHeaderTimeout  time.Duration
	// MaxHeaderBytes bounds the request line and headers (431 past it).
	MaxHeaderBytes  int
	IdleTimeout     time.Duration
	BodyIdleTimeout time.Duration
	BodyGrace       time.Duration
	BodyMinRate     int64
}

// Defaults of Limits.
const (
	DefaultMaxConnections     = 4096
	DefaultReserveConnections = 64
	DefaultReserveTimeout     = 5 * time.Second
	DefaultReadHeaderTimeout  = 10 * time.Second
	DefaultMaxHeaderBytes     = 64 << 10
	DefaultIdleTimeout        = 2 * time.Minute
	DefaultBodyIdleTimeout    = 10 * time.Second
	DefaultBodyGrace          = 10 * time.Second
	DefaultBodyMinRate        = 4 << 10
)

func (l *Limits) setDefaults() {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if l.MaxConnections <= 0 {
		l.MaxConnections = DefaultMaxConnections
	}
	if l.ReserveConnections <= 0 {
		l.ReserveConnections = DefaultReserveConnections
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.BodyMinRate <= 0 {
		l.BodyMinRate = DefaultBodyMinRate
	}
	def(&l.ReserveTimeout, DefaultReserveTimeout)
	def(&l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&l.IdleTimeout, DefaultIdleTimeout)
	def(&l.BodyIdleTimeout, DefaultBodyIdleTimeout)
	def(&l.BodyGrace, DefaultBodyGrace)
}

// connMetrics count the server's connections.
type connMetrics struct {
	open    *prometheus.GaugeVec
	refused prometheus.Counter
}

func newConnMetrics(r prometheus.Registerer) (*connMetrics, error) {
	m := &connMetrics{
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "synclayer_http_connections",
			Help: "Open HTTP connections, by pool: main, or reserve (health and metrics only, once main is full).",
		}, []string{"pool"}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "synclayer_http_connections_refused_total",
			Help: "HTTP connections closed at once because the main pool and the reserve were full.",
		}),
	}
	for _, c := range []prometheus.Collector{m.open, m.refused} {
		if err := r.Register(c); err != nil {
			return nil, err
		}
	}
	m.open.WithLabelValues("main")
	m.open.WithLabelValues("reserve")
	return m, nil
}

// HTTPServer returns an http.Server for the API with the server's Limits.
// Serve it on Listener(ln), not on ln itself, for the connection limits
// and JSON answers to malformed requests.
func (s *Server) HTTPServer() *http.Server {
	lim := s.opts.Limits
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if lc, ok := c.(*limitedConn); ok && lc.reserve {
				ctx = context.WithValue(ctx, reserveKey{}, true)
			}
			return ctx
		},
		// net/http logs accept errors and panics here; they go to the
		// host's log, at warn.
		ErrorLog: s.log.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Warn}),
	}
	// Shutdown waits for answers in flight; event streams would never
	// finish on their own.
	srv.RegisterOnShutdown(s.StopStreams)
	return srv
}

type reserveKey struct{}

// Listener wraps ln with the connection limits of the server's Limits.
func (s *Server) Listener(ln net.Listener) net.Listener {
	return &limitListener{Listener: ln, s: s}
}

type limitListener struct {
	net.Listener
	s             *Server
	main, reserve atomic.Int64
}

// refusal is what a connection past both pools gets before it is closed.
var refusal = func() []byte {
	var e errorBody
	e.Error.Code = "overloaded"
	e.Error.Message = "the server has too many open connections; try again in a few seconds"
	return rawAnswer(http.StatusServiceUnavailable, e, "Retry-After: 5\r\n")
}()

func (l *limitListener) Accept() (net.Conn, error) {
	lim := &l.s.opts.Limits
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.main.Add(1) <= int64(lim.MaxConnections) {
			return l.track(c, &l.main, "main", false), nil
		}
		l.main.Add(-1)
		if l.reserve.Add(1) <= int64(lim.ReserveConnections) {
			lc := l.track(c, &l.reserve, "reserve", true)
			lc.hard = time.Now().Add(lim.ReserveTimeout)
			_ = c.SetDeadline(lc.hard)
			return lc, nil
		}
		l.reserve.Add(-1)
		l.s.conns.refused.Inc()
		// A fresh socket's send buffer is empty: this write does not block.
		_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_, _ = c.Write(refusal)
		_ = c.Close()
	}
}

func (l *limitListener) track(c net.Conn, n *atomic.Int64, pool string, reserve bool) *limitedConn {
	g := l.s.conns.open.WithLabelValues(pool)
	g.Inc()
	return &limitedConn{Conn: c, reserve: reserve, maxHeader: l.s.opts.Limits.MaxHeaderBytes, release: func() { n.Add(-1); g.Dec() }}
}

// limitedConn is a connection counted against its pool until it closes.
// It also turns the text answers net/http writes for requests it cannot
// parse into the JSON envelope (see rewriteServerError).
type limitedConn struct {
	net.Conn
	reserve   bool
	hard      time.Time // reserve: no deadline may reach past it
	maxHeader int
	once      sync.Once
	release   func()
}

func (c *limitedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

func (c *limitedConn) capped(t time.Time) time.Time {
	if c.reserve && (t.IsZero() || t.After(c.hard)) {
		return c.hard
	}
	return t
}

func (c *limitedConn) SetDeadline(t time.Time) error { return c.Conn.SetDeadline(c.capped(t)) }

func (c *limitedConn) SetReadDeadline(t time.Time) error {
	return c.Conn.SetReadDeadline(c.capped(t))
}

func (c *limitedConn) SetWriteDeadline(t time.Time) error {
	return c.Conn.SetWriteDeadline(c.capped(t))
}

func (c *limitedConn) Write(b []byte) (int, error) {
	if len(b) > 9 && string(b[:9]) == "HTTP/1.1 " {
		if out, ok := rewriteServerError(b, c.maxHeader); ok {
			if _, err := c.Conn.Write(out); err != nil {
				return 0, err
			}
			return len(b), nil
		}
	}
	return c.Conn.Write(b)
}

// CloseWrite half-closes a TCP connection; net/http uses it to let a
// client read an error answer before the connection closes.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// rawAnswer is a complete HTTP/1.1 answer with a JSON body, for writing
// straight to a connection.
func rawAnswer(status int, v errorBody, extraHeaders string) []byte {
	body, _ := json.Marshal(v)
	body = append(body, '\n')
	head := fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n%s\r\n",
		status, http.StatusText(status), len(body), extraHeaders)
	return append([]byte(head), body...)
}

// isHealthPath: what the reserve pool answers.
func isHealthPath(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	switch r.URL.Path {
	case "/healthz", "/readyz", "/metrics":
		return true
	}
	return false
}

// pacedBody enforces the body pace of Limits through read deadlines on
// the connection, set before each read. Once the body has been read to
// its end the deadline is lifted: net/http then reads the connection in
// the background to notice a client that goes away, and a deadline there
// would cancel the request's context.
type pacedBody struct {
	body  io.ReadCloser
	rc    *http.ResponseController
	lim   *Limits
	start time.Time
	n     int64
	eof   bool
}

func newPacedBody(w http.ResponseWriter, r *http.Request, lim *Limits) *pacedBody {
	p := &pacedBody{body: r.Body, rc: http.NewResponseController(w), lim: lim, start: time.Now()}
	// Until the handler reads, the body is due within the grace period;
	// a handler that never reads it still has net/http read (and discard)
	// what is left before answering.
	_ = p.rc.SetReadDeadline(p.start.Add(lim.BodyGrace + lim.BodyIdleTimeout))
	return p
}

func (p *pacedBody) Read(b []byte) (int, error) {
	if p.eof {
		return 0, io.EOF
	}
	now := time.Now()
	deadline := now.Add(p.lim.BodyIdleTimeout)
	byRate := p.start.Add(p.lim.BodyGrace + time.Duration(float64(p.n+1)/float64(p.lim.BodyMinRate)*float64(time.Second)))
	if byRate.Before(deadline) {
		deadline = byRate
	}
	_ = p.rc.SetReadDeadline(deadline)
	n, err := p.body.Read(b)
	p.n += int64(n)
	if err == io.EOF {
		p.eof = true
		_ = p.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

func (p *pacedBody) Close() error { return p.body.Close() }

// done runs when the handler has returned: what is left of a body the
// handler did not read is discarded by net/http within BodyIdleTimeout.
func (p *pacedBody) done() {
	if !p.eof {
		_ = p.rc.SetReadDeadline(time.Now().Add(p.lim.BodyIdleTimeout))
	}
}
