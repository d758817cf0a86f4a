package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/synclayer/synclayer/core/engine"
)

// hookRoutes registers the inbound hooks and the management of trigger
// webhooks. Hooks authenticate by their own means (unguessable ids, the
// connector's signature check), never by the bearer token.
func (s *Server) hookRoutes() {
	for _, prefix := range []string{"/hooks/layers/{layer}", "/hooks/data_layer/data_source/publish/{layer}"} {
		s.public("POST "+prefix, s.triggerHook)
		s.public("POST "+prefix+"/{hook}", s.triggerHook)
	}
	s.public("POST /hooks/sources/{layer}/{source}", s.sourceHook)
	s.public("POST /hooks/sources/{layer}/{source}/{connection}", s.sourceHook)

	s.handle("GET /v1/layers/{layer}/webhooks", s.listWebhooks)
	s.handle("POST /v1/layers/{layer}/webhooks", s.addWebhook)
	s.handle("DELETE /v1/layers/{layer}/webhooks/{id}", s.deleteWebhook)
	s.handle("POST /v1/layers/{layer}/sources/{source}/syncs/{sync}/pause", s.pauseSync)
	s.handle("POST /v1/layers/{layer}/sources/{source}/syncs/{sync}/resume", s.resumeSync)
}

// triggerHook is a stateless sync trigger (Netlify Connect style). The body
// is ignored; X-Data-Source (or X-Connect-Data-Source) limits the run to
// one source.
func (s *Server) triggerHook(w http.ResponseWriter, r *http.Request) {
	source := r.Header.Get("X-Data-Source")
	if source == "" {
		source = r.Header.Get("X-Connect-Data-Source")
	}
	run, err := s.eng().TriggerHook(r.PathValue("layer"), r.PathValue("hook"), strings.TrimSpace(source))
	if err != nil {
		s.hookError(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"run": run})
}

// sourceHook is a payload webhook for a source, or for one connection of a
// source with connections (Nango real-time style).
func (s *Server) sourceHook(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	if err := s.eng().ReceiveWebhook(r.Context(), r.PathValue("layer"), r.PathValue("source"), r.PathValue("connection"), r, body); err != nil {
		s.hookError(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "accepted"})
}

func (s *Server) hookError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, engine.ErrWebhookRefused):
		writeError(w, http.StatusUnauthorized, "unauthorized", err.Error())
	case errors.Is(err, engine.ErrUnknownHook):
		writeError(w, http.StatusNotFound, "not_found", "no such hook")
	case errors.Is(err, engine.ErrInboxFull):
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusTooManyRequests, "inbox_full", err.Error())
	default:
		s.engineError(w, err)
	}
}

type webhookView struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	URL     string `json:"url"`
	Created string `json:"created_at"`
}

func hookURL(r *http.Request, layer, id string) string {
	// Behind a TLS-terminating proxy the URL users call is https.
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/hooks/layers/" + layer + "/" + id
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	layer := r.PathValue("layer")
	hooks, err := s.eng().Webhooks(layer)
	if err != nil {
		s.engineError(w, err)
		return
	}
	out := []webhookView{}
	for _, h := range hooks {
		out = append(out, webhookView{ID: h.ID, Name: h.Name, URL: hookURL(r, layer, h.ID), Created: h.Created.Format(timeFormat)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhooks": out})
}

const timeFormat = "2006-01-02T15:04:05.000000Z07:00"

func (s *Server) addWebhook(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name string `json:"name"`
	}
	if !s.decodeBody(w, r, &body) {
		return
	}
	if len(body.Name) > 200 {
		writeError(w, http.StatusBadRequest, "bad_name", "name is at most 200 characters")
		return
	}
	layer := r.PathValue("layer")
	h, err := s.eng().AddWebhook(layer, body.Name)
	if err != nil {
		s.engineError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, webhookView{ID: h.ID, Name: h.Name, URL: hookURL(r, layer, h.ID), Created: h.Created.Format(timeFormat)})
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	if err := s.eng().DeleteWebhook(r.PathValue("layer"), r.PathValue("id")); err != nil {
		if errors.Is(err, engine.ErrUnknownHook) {
			writeError(w, http.StatusNotFound, "not_found", "no such webhook")
			return
		}
		s.engineError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) pauseSync(w http.ResponseWriter, r *http.Request) {
	s.setPaused(w, r, true)
}

func (s *Server) resumeSync(w http.ResponseWriter, r *http.Request) {
	s.setPaused(w, r, false)
}

func (s *Server) setPaused(w http.ResponseWriter, r *http.Request, paused bool) {
	f := s.eng().Resume
	if paused {
		f = s.eng().Pause
	}
	if err := f(r.PathValue("layer"), r.PathValue("source"), r.PathValue("sync")); err != nil {
		s.engineError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"paused": paused})
}
