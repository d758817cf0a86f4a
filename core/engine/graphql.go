package engine

import (
	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/graphql"
)

// Models returns the models the connectors of a layer's sources declare,
// by source, as the GraphQL schema builder takes them.
func (e *Engine) Models(layerName string) (map[string][]graphql.Model, error) {
	l, err := e.layer(layerName)
	if err != nil {
		return nil, err
	}
	return l.models(), nil
}

func (l *layer) models() map[string][]graphql.Model {
	out := map[string][]graphql.Model{}
	for _, s := range l.sources {
		s.mu.Lock()
		desc := s.desc
		s.mu.Unlock()
		if desc == nil {
			continue
		}
		ms := make([]graphql.Model, 0, len(desc.Models))
		for _, m := range desc.Models {
			gm := graphql.Model{Name: m.Name}
			for _, f := range m.Fields {
				gm.Fields = append(gm.Fields, graphql.ModelField{Name: f.Name, Type: f.Type})
			}
			ms = append(ms, gm)
		}
		out[s.cfg.Name] = ms
	}
	return out
}

// LayerConfig returns a layer's configuration.
func (e *Engine) LayerConfig(layerName string) (*config.Layer, error) {
	l, ok := e.layers[layerName]
	if !ok {
		return nil, ErrUnknownLayer
	}
	return l.cfg, nil
}

// setFieldIndexes has the store keep the field indexes the layer's index
// and reference blocks need (building new ones over the current
// revision), and reports declared models of different sources that would
// share a GraphQL type. That is logged as an error rather than refusing to
// start: a layer that served REST reads before GraphQL existed keeps
// working, and its GraphQL schema leaves the second type out, saying why.
func (l *layer) setFieldIndexes() error {
	models := l.models()
	if err := graphql.CheckTypeNames(l.cfg, models); err != nil {
		l.log.Error("GraphQL types clash; the second of each is left out of the layer's GraphQL schema", "diagnostics", err.Error())
	}
	return l.db.SetFieldIndexes(graphql.FieldIndexes(l.cfg, models))
}
