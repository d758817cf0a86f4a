package sdk

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/synclayer/synclayer/plugin-sdk/internal/schema"
	"github.com/synclayer/synclayer/plugin-sdk/internal/wire"
)

// handler adapts a Connector to wire.Handler: it turns the SDK's public
// types into the wire package's plain values and back.
type handler struct {
	c      Connector
	static Description
	fields []schema.Field
}

// newHandler describes c once, derives its config schema and validates the
// description. A panic in Describe is returned as an error.
func newHandler(c Connector) (h *handler, err error) {
	if c == nil {
		return nil, errors.New("sdk: the Connector is nil")
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("connector panicked in Describe: %v\n%s", r, debug.Stack())
		}
	}()
	d := c.Describe()
	fields, err := schema.Fields(d.Config)
	if err != nil {
		return nil, err
	}
	if d.Name == "" {
		return nil, errors.New("sdk: Describe returned no Name")
	}
	if err := validate(&d); err != nil {
		return nil, err
	}
	return &handler{c: c, static: d, fields: fields}, nil
}

// validate checks what the host would otherwise reject later: unique model
// and sync names, syncs naming declared models.
func validate(d *Description) error {
	models := map[string]bool{}
	for _, m := range d.Models {
		if m.Name == "" {
			return errors.New("sdk: a model has no Name")
		}
		if models[m.Name] {
			return fmt.Errorf("sdk: model %q is declared twice", m.Name)
		}
		models[m.Name] = true
	}
	syncs := map[string]bool{}
	for _, s := range d.Syncs {
		if s.Name == "" {
			return errors.New("sdk: a sync has no Name")
		}
		if syncs[s.Name] {
			return fmt.Errorf("sdk: sync %q is declared twice", s.Name)
		}
		syncs[s.Name] = true
		for _, m := range s.Models {
			if !models[m] {
				return fmt.Errorf("sdk: sync %q names model %q, which is not declared", s.Name, m)
			}
		}
		if s.Every < 0 {
			return fmt.Errorf("sdk: sync %q has a negative Every", s.Name)
		}
		if s.Every > 0 && s.Cron != "" {
			return fmt.Errorf("sdk: sync %q sets both Every and Cron; choose one", s.Name)
		}
	}
	return nil
}

// describeFor answers the description for a configured source: Configure's
// models and syncs when the connector has it, else the static description.
func (h *handler) describeFor(ctx context.Context, rc *wire.RunContext, log hclog.Logger) (*Description, error) {
	cm, ok := h.c.(ConnectorWithConfiguredModels)
	if !ok || rc == nil {
		return &h.static, nil
	}
	got, err := cm.Configure(ctx, &ConfigRequest{Layer: rc.Layer, Source: rc.Source, Logger: log, config: rc.Config})
	if err != nil {
		return nil, err
	}
	d := h.static
	d.Watches = false
	if got != nil {
		d.Models, d.Syncs, d.Watches = got.Models, got.Syncs, got.Watches
	}
	if err := validate(&d); err != nil {
		return nil, fmt.Errorf("Configure: %w", err)
	}
	if _, ok := h.c.(ConnectorWithWatch); d.Watches && !ok {
		return nil, fmt.Errorf("Configure: the description sets Watches, but %T does not implement sdk.ConnectorWithWatch (its Watch method)", h.c)
	}
	return &d, nil
}

// watches tells whether the connector watches with description d: for a
// configured description of a connector with Configure, what Configure
// said; else whether it implements ConnectorWithWatch.
func (h *handler) watches(d *Description, configured bool) bool {
	if _, ok := h.c.(ConnectorWithWatch); !ok {
		return false
	}
	if _, dynamic := h.c.(ConnectorWithConfiguredModels); dynamic && configured {
		return d.Watches
	}
	return true
}

// webhooks tells whether a configuration takes payload webhooks (see
// ConnectorWithConfiguredWebhooks); without one (rc nil), whether the
// connector takes them for some configurations.
func (h *handler) webhooks(ctx context.Context, rc *wire.RunContext, log hclog.Logger) (bool, error) {
	if _, ok := h.c.(ConnectorWithWebhooks); !ok {
		return false, nil
	}
	cw, ok := h.c.(ConnectorWithConfiguredWebhooks)
	if !ok || rc == nil {
		return true, nil
	}
	on, err := cw.WebhooksEnabled(ctx, &ConfigRequest{Layer: rc.Layer, Source: rc.Source, Logger: log, config: rc.Config})
	if err != nil {
		return false, fmt.Errorf("WebhooksEnabled: %w", err)
	}
	return on, nil
}

// errNoWebhooks refuses a webhook call for a configuration that does not
// take webhooks.
var errNoWebhooks = errors.New("this source's configuration does not take payload webhooks (the connector's WebhooksEnabled says so)")

// webhookAllowed returns errNoWebhooks when the call's configuration does
// not take webhooks.
func (h *handler) webhookAllowed(ctx context.Context, call *wire.WebhookCall) error {
	on, err := h.webhooks(ctx, &call.RunContext, call.Logger)
	if err != nil {
		return err
	}
	if !on {
		return errNoWebhooks
	}
	return nil
}

// Describe implements wire.Handler.
func (h *handler) Describe(ctx context.Context, rc *wire.RunContext, log hclog.Logger) (*wire.Description, error) {
	d, err := h.describeFor(ctx, rc, log)
	if err != nil {
		return nil, err
	}
	webhooks, err := h.webhooks(ctx, rc, log)
	if err != nil {
		return nil, err
	}
	out := &wire.Description{Name: d.Name, Version: d.Version, Config: h.fields, Webhooks: webhooks, Watches: h.watches(d, rc != nil)}
	for _, m := range d.Models {
		wm := wire.Model{Name: m.Name, Description: m.Description}
		for _, f := range m.Fields {
			wm.Fields = append(wm.Fields, wire.ModelField(f))
		}
		out.Models = append(out.Models, wm)
	}
	for _, s := range d.Syncs {
		out.Syncs = append(out.Syncs, wire.SyncSpec(s))
	}
	return out, nil
}

// Check implements wire.Handler.
func (h *handler) Check(ctx context.Context, rc *wire.RunContext, log hclog.Logger) error {
	cc, ok := h.c.(ConnectorWithCheck)
	if !ok {
		return nil
	}
	return cc.Check(ctx, &CheckRequest{Layer: rc.Layer, Source: rc.Source, Logger: log, config: rc.Config})
}

// Sync implements wire.Handler.
func (h *handler) Sync(ctx context.Context, call *wire.SyncCall, out *wire.Stream) error {
	d, err := h.describeFor(ctx, &call.RunContext, call.Logger)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(d.Syncs, func(s SyncSpec) bool { return s.Name == call.Sync })
	if i < 0 {
		all := make([]string, 0, len(d.Syncs))
		for _, s := range d.Syncs {
			all = append(all, s.Name)
		}
		return &wire.InvalidArgumentError{Err: fmt.Errorf("unknown sync %q; this connector's syncs: %s", call.Sync, strings.Join(all, ", "))}
	}
	spec := d.Syncs[i]
	models := slices.Clone(call.Models)
	if len(models) == 0 {
		models = slices.Clone(spec.Models)
	}
	declared := d.Models
	_, dynamic := h.c.(ConnectorWithConfiguredModels)
	for _, m := range models {
		if slices.Contains(spec.Models, m) {
			continue
		}
		if dynamic && !slices.ContainsFunc(d.Models, func(x Model) bool { return x.Name == m }) {
			// The host described the source earlier and the model has
			// gone since (its file or table was removed): let the
			// connector delete its records.
			declared = append(slices.Clip(declared), Model{Name: m})
			continue
		}
		return &wire.InvalidArgumentError{Err: fmt.Errorf("sync %q does not fetch model %q; its models: %s", spec.Name, m, strings.Join(spec.Models, ", "))}
	}
	cp, err := decodeCheckpoint(call.Checkpoint)
	if err != nil {
		return &wire.InvalidArgumentError{Err: err}
	}
	req := &SyncRequest{
		Layer: call.Layer, Source: call.Source, Sync: call.Sync,
		Models: models, Full: call.Full, Resume: call.Resume, Checkpoint: cp,
		Logger: call.Logger, config: call.Config,
	}
	return h.c.Sync(ctx, req, newWriter(out, models, declared, dynamic))
}

func (h *handler) webhookRequest(call *wire.WebhookCall) *WebhookRequest {
	return &WebhookRequest{
		Layer: call.Layer, Source: call.Source,
		Method: call.Method, Path: call.Path, Header: call.Header, Body: call.Body,
		Logger: call.Logger, config: call.Config,
	}
}

// VerifyWebhook implements wire.Handler.
func (h *handler) VerifyWebhook(ctx context.Context, call *wire.WebhookCall) error {
	wc, ok := h.c.(ConnectorWithWebhooks)
	if !ok {
		return wire.ErrUnimplemented
	}
	if err := h.webhookAllowed(ctx, call); err != nil {
		return err
	}
	return wc.VerifyWebhook(ctx, h.webhookRequest(call))
}

// HandleWebhook implements wire.Handler.
func (h *handler) HandleWebhook(ctx context.Context, call *wire.WebhookCall, out *wire.Stream) error {
	wc, ok := h.c.(ConnectorWithWebhooks)
	if !ok {
		return wire.ErrUnimplemented
	}
	if err := h.webhookAllowed(ctx, call); err != nil {
		return err
	}
	d, err := h.describeFor(ctx, &call.RunContext, call.Logger)
	if err != nil {
		return err
	}
	models := make([]string, 0, len(d.Models))
	for _, m := range d.Models {
		models = append(models, m.Name)
	}
	_, dynamic := h.c.(ConnectorWithConfiguredModels)
	return wc.HandleWebhook(ctx, h.webhookRequest(call), newWriter(out, models, d.Models, dynamic))
}

// Watch implements wire.Handler.
func (h *handler) Watch(ctx context.Context, call *wire.WatchCall, emit wire.Emit) error {
	wc, ok := h.c.(ConnectorWithWatch)
	if !ok {
		return wire.ErrUnimplemented
	}
	d, err := h.describeFor(ctx, &call.RunContext, call.Logger)
	if err != nil {
		return err
	}
	if !h.watches(d, true) {
		return fmt.Errorf("this configuration does not enable watching (Configure did not set Watches): %w", wire.ErrUnimplemented)
	}
	syncs := make([]string, 0, len(d.Syncs))
	for _, s := range d.Syncs {
		syncs = append(syncs, s.Name)
	}
	trigger := func(tctx context.Context, names ...string) error {
		var out []string
		for _, n := range names {
			if !slices.Contains(syncs, n) {
				return fmt.Errorf("sdk: trigger: unknown sync %q; this source's syncs: %s", n, strings.Join(syncs, ", "))
			}
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
		return emit(tctx, out, triggerReason(tctx))
	}
	req := &WatchRequest{Layer: call.Layer, Source: call.Source, Syncs: slices.Clone(syncs), Logger: call.Logger, config: call.Config}
	return wc.Watch(ctx, req, trigger)
}
