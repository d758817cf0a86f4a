package api

import (
	"net/http"
	"strconv"
	"sync"

	"github.com/synclayer/synclayer/core/graphql"
)

// graphqlServices holds one GraphQL service per layer: each caches the
// field statistics and schemas of its layer's recent revisions.
type graphqlServices struct {
	mu sync.Mutex
	m  map[string]*graphql.Service
}

func (s *Server) graphqlService(layer string) *graphql.Service {
	s.gql.mu.Lock()
	defer s.gql.mu.Unlock()
	if s.gql.m == nil {
		s.gql.m = map[string]*graphql.Service{}
	}
	g := s.gql.m[layer]
	if g == nil {
		g = graphql.New(graphql.Options{Logger: s.log.Named("graphql").With("layer", layer), TimeLimit: s.opts.GraphQLTimeLimit})
		s.gql.m[layer] = g
	}
	return g
}

// graphqlRoutes registers the GraphQL endpoints of SPEC §14. They
// authenticate as record reads: the admin token or an api_token of the
// layer, whose model and source scope hides the types out of it.
func (s *Server) graphqlRoutes() {
	for _, m := range []string{"GET", "POST"} {
		s.public(m+" /v1/layers/{layer}/graphql", s.serveGraphQL)
		s.public(m+" /v1/layers/{layer}/revisions/{revision}/graphql", s.serveGraphQL)
	}
}

func (s *Server) serveGraphQL(w http.ResponseWriter, r *http.Request) {
	layer := r.PathValue("layer")
	scope, ok := s.authRead(w, r, layer)
	if !ok {
		return
	}
	var rev int64
	if v := r.PathValue("revision"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "bad_revision", "the revision in the path must be a revision number (1 or more)")
			return
		}
		rev = n
	}
	e := s.eng()
	db, err := e.Store(layer)
	if err != nil {
		s.engineError(w, err)
		return
	}
	cfg, err := e.LayerConfig(layer)
	if err != nil {
		s.engineError(w, err)
		return
	}
	models, err := e.Models(layer)
	if err != nil {
		s.engineError(w, err)
		return
	}
	s.graphqlService(layer).ServeHTTP(w, r, graphql.Env{Config: cfg, Models: models, Store: db}, rev,
		graphql.Scope{All: scope.all, Models: scope.models, Sources: scope.sources, Connections: scope.connections})
}
