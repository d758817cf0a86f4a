package api

import (
	_ "embed"
	"net/http"
)

// openAPIDocument is the OpenAPI 3.0 description of every route, written by
// hand; openapi_test.go keeps its paths and methods equal to Routes.
//
//go:embed openapi.json
var openAPIDocument []byte

// openAPIRoutes registers GET /v1/openapi.json. It is public, as health
// and metrics are: the document describes the API and holds no data.
func (s *Server) openAPIRoutes() {
	s.public("GET /v1/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(openAPIDocument)
	})
}
