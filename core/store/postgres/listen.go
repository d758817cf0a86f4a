package postgres

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// notifyChannel is the one channel every host listens on; a
// notification's payload is "<layer>\x1f<kind>\x1f<payload>".
const notifyChannel = "synclayer"

func encodeNotification(layer, kind, payload string) string {
	return layer + "\x1f" + kind + "\x1f" + payload
}

func decodeNotification(s string) (layer, kind, payload string, ok bool) {
	layer, rest, ok := strings.Cut(s, "\x1f")
	if !ok {
		return "", "", "", false
	}
	kind, payload, _ = strings.Cut(rest, "\x1f")
	return layer, kind, payload, true
}

// listener holds one connection (outside the pool) listening on
// notifyChannel, reconnecting when it drops. After a reconnection every
// open layer is told "resync": notifications sent while it was away are
// lost, and each layer must reread what it caches.
type listener struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func startListener(ctx context.Context, cfg *pgx.ConnConfig, s *Store) (*listener, error) {
	conn, err := listenConn(ctx, cfg)
	if err != nil {
		return nil, err
	}
	lctx, cancel := context.WithCancel(context.Background())
	ln := &listener{cancel: cancel, done: make(chan struct{})}
	go ln.run(lctx, cfg, conn, s)
	return ln, nil
}

func listenConn(ctx context.Context, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg.Copy())
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(cctx, "LISTEN "+notifyChannel); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return conn, nil
}

func (ln *listener) run(ctx context.Context, cfg *pgx.ConnConfig, conn *pgx.Conn, s *Store) {
	defer close(ln.done)
	defer func() { conn.Close(context.Background()) }()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err == nil {
			layer, kind, payload, ok := decodeNotification(n.Payload)
			if !ok {
				continue
			}
			if l := s.layerByName(layer); l != nil {
				l.notified(kind, payload)
			}
			continue
		}
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("lost the connection listening for other hosts' changes; reconnecting", "error", err)
		conn.Close(context.Background())
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			c, err := listenConn(ctx, cfg)
			if err == nil {
				conn = c
				break
			}
			if errors.Is(err, context.Canceled) {
				return
			}
		}
		s.mu.Lock()
		layers := make([]*Layer, 0, len(s.layers))
		for _, l := range s.layers {
			layers = append(layers, l)
		}
		s.mu.Unlock()
		for _, l := range layers {
			l.notified(kindResync, "")
		}
	}
}

// kindResync tells a layer that notifications may have been lost.
const kindResync = "resync"

func (ln *listener) stop() {
	ln.cancel()
	<-ln.done
}
