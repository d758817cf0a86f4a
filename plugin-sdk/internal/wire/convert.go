package wire

import (
	"fmt"
	"net/http"

	ctyjson "github.com/zclconf/go-cty/cty/json"

	connectorv1 "github.com/synclayer/synclayer/proto/connector/v1"
)

// toproto / fromproto: the only place that knows both sides.

func describeToProto(d *Description) (*connectorv1.DescribeResponse, error) {
	res := &connectorv1.DescribeResponse{
		Name:            d.Name,
		Version:         d.Version,
		Webhooks:        d.Webhooks,
		Watches:         d.Watches,
		ProtocolVersion: connectorv1.ProtocolVersion,
	}
	for _, f := range d.Config {
		typ, err := ctyjson.MarshalType(f.Type)
		if err != nil {
			return nil, fmt.Errorf("config attribute %q: encoding its type: %w", f.Name, err)
		}
		res.Config = append(res.Config, &connectorv1.ConfigField{
			Name:        f.Name,
			Type:        typ,
			Required:    f.Required,
			Sensitive:   f.Sensitive,
			Description: f.Doc,
		})
	}
	for _, m := range d.Models {
		pm := &connectorv1.Model{Name: m.Name, Description: m.Description}
		for _, f := range m.Fields {
			pm.Fields = append(pm.Fields, &connectorv1.ModelField{Name: f.Name, Type: f.Type})
		}
		res.Models = append(res.Models, pm)
	}
	for _, s := range d.Syncs {
		ps := &connectorv1.SyncSpec{
			Name:        s.Name,
			Models:      append([]string(nil), s.Models...),
			Cron:        s.Cron,
			Incremental: s.Incremental,
		}
		if s.Every > 0 {
			ps.Every = s.Every.String()
		}
		res.Syncs = append(res.Syncs, ps)
	}
	return res, nil
}

func runContextFromProto(rc *connectorv1.RunContext) RunContext {
	if rc == nil {
		return RunContext{}
	}
	return RunContext{Layer: rc.GetLayer(), Source: rc.GetSource(), Config: rc.GetConfig()}
}

func headersFromProto(hs []*connectorv1.Header) http.Header {
	h := make(http.Header, len(hs))
	for _, x := range hs {
		k := http.CanonicalHeaderKey(x.GetName())
		h[k] = append(h[k], x.GetValues()...)
	}
	return h
}

func webhookFromProto(req *connectorv1.WebhookRequest) *WebhookCall {
	return &WebhookCall{
		RunContext: runContextFromProto(req.GetContext()),
		Method:     req.GetMethod(),
		Path:       req.GetPath(),
		Header:     headersFromProto(req.GetHeaders()),
		Body:       req.GetBody(),
	}
}
