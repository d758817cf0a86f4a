package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
	"github.com/synclayer/synclayer/plugin-sdk/sdktest"
)

// watchConn runs a function as its Watch.
type watchConn struct {
	conn
	watch func(ctx context.Context, req *sdk.WatchRequest, trigger func(context.Context, ...string) error) error
}

func (c *watchConn) Watch(ctx context.Context, req *sdk.WatchRequest, trigger func(context.Context, ...string) error) error {
	return c.watch(ctx, req, trigger)
}

// dynWatchConn watches when its config says watch = true.
type dynWatchConn struct{ watchConn }

func (c *dynWatchConn) Describe() sdk.Description {
	return sdk.Description{Name: "dynwatch", Config: &struct {
		Watch bool `config:"watch"`
	}{}}
}

func (c *dynWatchConn) Configure(ctx context.Context, req *sdk.ConfigRequest) (*sdk.Description, error) {
	var cfg struct {
		Watch bool `config:"watch"`
	}
	if err := req.DecodeConfig(&cfg); err != nil {
		return nil, err
	}
	return &sdk.Description{
		Models:  []sdk.Model{{Name: "A"}, {Name: "B"}},
		Syncs:   []sdk.SyncSpec{{Name: "a", Models: []string{"A"}}, {Name: "b", Models: []string{"B"}}},
		Watches: cfg.Watch,
	}, nil
}

// untilDone waits for ctx and returns nil, as a well-behaved Watch does.
func untilDone(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

func next(t *testing.T, w *sdktest.WatchStream) sdktest.WatchEvent {
	t.Helper()
	ev, err := w.Next(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestWatchAdvertised(t *testing.T) {
	for _, tc := range []struct {
		name         string
		c            sdk.Connector
		cfg          map[string]any
		static, conf bool
	}{
		{"without Watch", &conn{}, map[string]any{"dir": "x", "secret": "s"}, false, false},
		{"with Watch", &watchConn{}, map[string]any{"dir": "x", "secret": "s"}, true, true},
		{"configured, off", &dynWatchConn{}, map[string]any{}, true, false},
		{"configured, on", &dynWatchConn{}, map[string]any{"watch": true}, true, true},
	} {
		h := sdktest.New(t, tc.c)
		d, err := h.Describe(nil)
		if err != nil || d.Watches != tc.static {
			t.Errorf("%s: static Watches = %v (%v), want %v", tc.name, d.Watches, err, tc.static)
		}
		d, err = h.Describe(tc.cfg)
		if err != nil || d.Watches != tc.conf {
			t.Errorf("%s: configured Watches = %v (%v), want %v", tc.name, d.Watches, err, tc.conf)
		}
	}
	// Describe's Watches is ignored: implementing Watch is what counts.
	h := sdktest.New(t, &descConn{d: func() sdk.Description { return sdk.Description{Name: "x", Watches: true} }})
	if d, err := h.Describe(nil); err != nil || d.Watches {
		t.Errorf("Describe claiming Watches without Watch: %v %+v", err, d)
	}
}

// claimsWatch sets Watches in Configure without implementing Watch.
type claimsWatch struct{ dynConn }

func (c *claimsWatch) Configure(ctx context.Context, req *sdk.ConfigRequest) (*sdk.Description, error) {
	return &sdk.Description{Watches: true}, nil
}

func TestWatchesWithoutWatchIsAnError(t *testing.T) {
	h := sdktest.New(t, &claimsWatch{})
	if _, err := h.Describe(map[string]any{}); err == nil || !strings.Contains(err.Error(), "does not implement sdk.ConnectorWithWatch") {
		t.Fatalf("got %v", err)
	}
}

func TestWatchEvents(t *testing.T) {
	var got struct {
		sync.Mutex
		req      *sdk.WatchRequest
		errs     []string
		ctxEnded bool
	}
	c := &dynWatchConn{}
	c.watch = func(ctx context.Context, req *sdk.WatchRequest, trigger func(context.Context, ...string) error) error {
		got.Lock()
		got.req = req
		got.Unlock()
		var cfg struct {
			Watch bool `config:"watch"`
		}
		if err := req.DecodeConfig(&cfg); err != nil || !cfg.Watch {
			return fmt.Errorf("config: %v %+v", err, cfg)
		}
		req.Logger.Info("watching")
		steps := []func() error{
			func() error { return trigger(ctx, "a") },
			func() error { return trigger(sdk.WithTriggerReason(ctx, "NOTIFY x, 'b'"), "b", "a", "b") },
			func() error { return trigger(ctx) },
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return err
			}
		}
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		for _, err := range []error{trigger(ctx, "nope"), trigger(cancelled, "a")} {
			got.Lock()
			got.errs = append(got.errs, fmt.Sprint(err))
			got.Unlock()
		}
		<-ctx.Done()
		got.Lock()
		got.ctxEnded = true
		got.Unlock()
		return ctx.Err()
	}
	h := sdktest.New(t, c)
	h.Layer, h.Source = "shop", "db"
	w := h.Watch(t.Context(), map[string]any{"watch": true})
	want := []string{"[a] ", "[b a] NOTIFY x, 'b'", "[] "}
	for _, wnt := range want {
		ev := next(t, w)
		if s := fmt.Sprintf("%v %s", ev.Syncs, ev.Reason); s != wnt {
			t.Errorf("event %q, want %q", s, wnt)
		}
	}
	if ev, err := w.Next(100 * time.Millisecond); err == nil {
		t.Errorf("unexpected event %+v", ev)
	}
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	got.Lock()
	defer got.Unlock()
	if !got.ctxEnded {
		t.Error("Stop returned before the connector's Watch saw its ctx end")
	}
	if got.req.Layer != "shop" || got.req.Source != "db" || fmt.Sprint(got.req.Syncs) != "[a b]" || got.req.Logger == nil {
		t.Errorf("request %+v", got.req)
	}
	if len(got.errs) != 2 || !strings.Contains(got.errs[0], `unknown sync "nope"; this source's syncs: a, b`) || got.errs[1] != context.Canceled.Error() {
		t.Errorf("trigger errors %q", got.errs)
	}
}

func TestWatchRefused(t *testing.T) {
	plain := sdktest.New(t, &conn{})
	w := plain.Watch(t.Context(), nil)
	if err := w.Wait(); err == nil || !strings.Contains(err.Error(), "not implemented") {
		t.Errorf("a connector without Watch: %v", err)
	}
	if _, err := w.Next(time.Second); err == nil || !strings.Contains(err.Error(), "not implemented") {
		t.Errorf("Next: %v", err)
	}
	c := &dynWatchConn{}
	c.watch = func(ctx context.Context, req *sdk.WatchRequest, trigger func(context.Context, ...string) error) error {
		return errors.New("must not be called")
	}
	w = sdktest.New(t, c).Watch(t.Context(), map[string]any{"watch": false})
	if err := w.Wait(); err == nil || !strings.Contains(err.Error(), "does not enable watching") || !strings.Contains(err.Error(), "not implemented") {
		t.Errorf("a configuration without watching: %v", err)
	}
}

func TestWatchEnds(t *testing.T) {
	var kept func(context.Context, ...string) error
	var mu sync.Mutex
	cases := []struct {
		name  string
		watch func(ctx context.Context, req *sdk.WatchRequest, trigger func(context.Context, ...string) error) error
		want  string
	}{
		{"error", func(ctx context.Context, _ *sdk.WatchRequest, trigger func(context.Context, ...string) error) error {
			if err := trigger(ctx, "all"); err != nil {
				return err
			}
			return errors.New("upstream gone for good")
		}, "upstream gone for good"},
		{"panic", func(ctx context.Context, _ *sdk.WatchRequest, trigger func(context.Context, ...string) error) error {
			_ = trigger(ctx, "all")
			panic("boom")
		}, "connector panicked: boom"},
		{"nil", func(ctx context.Context, _ *sdk.WatchRequest, trigger func(context.Context, ...string) error) error {
			mu.Lock()
			kept = trigger
			mu.Unlock()
			return trigger(ctx, "all")
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := sdktest.New(t, &watchConn{watch: tc.watch}).Watch(t.Context(), nil)
			if ev := next(t, w); fmt.Sprint(ev.Syncs) != "[all]" {
				t.Errorf("event %+v", ev)
			}
			errText := func(err error) string {
				if err == nil {
					return ""
				}
				return err.Error()
			}
			if err := w.Wait(); errText(err) != tc.want {
				t.Errorf("Wait: %v, want %q", err, tc.want)
			}
			if _, ok := <-w.Events(); ok {
				t.Error("Events not closed after the end")
			}
			if err := w.Stop(); errText(err) != tc.want {
				t.Errorf("Stop after the end: %v, want %q", err, tc.want)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if err := kept(context.Background(), "all"); err == nil || !strings.Contains(err.Error(), "stream has ended") {
		t.Errorf("trigger after Watch returned: %v", err)
	}
}

func TestWatchStopsWithCtx(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	w := sdktest.New(t, &watchConn{watch: func(ctx context.Context, _ *sdk.WatchRequest, trigger func(context.Context, ...string) error) error {
		if err := trigger(ctx); err != nil {
			return err
		}
		return untilDone(ctx)
	}}).Watch(ctx, nil)
	next(t, w)
	cancel()
	if err := w.Wait(); err != nil {
		t.Fatal(err)
	}
}
