package ui

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// CookieName is the session cookie.
const CookieName = "synclayer_session"

// maxFormBytes bounds a form's body (the GraphQL explorer's query is the
// largest: 64 KiB, plus its variables).
const maxFormBytes = 256 << 10

// session is one browser's session: before sign-in it only carries the
// CSRF token of the sign-in form; after, it is authenticated until it
// expires, the browser signs out, or the admin token changes.
type session struct {
	id      string
	csrf    string
	authed  bool
	token   [32]byte // SHA-256 of the admin token it signed in with
	created time.Time
	expires time.Time
}

// sessions are held in memory: a restart signs everyone out.
type sessions struct {
	mu sync.Mutex
	m  map[string]*session
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// newSession starts a session and sets its cookie.
func (u *UI) newSession(w http.ResponseWriter, r *http.Request, authed bool) *session {
	now := u.opts.Now()
	s := &session{id: randomToken(), csrf: randomToken(), authed: authed, created: now, expires: now.Add(u.opts.SessionLifetime)}
	if !authed {
		// A sign-in form is filled in minutes, not hours.
		s.expires = now.Add(min(u.opts.SessionLifetime, time.Hour))
	}
	if t := u.token.Load(); t != nil {
		s.token = *t
	}
	u.sessions.mu.Lock()
	if len(u.sessions.m) >= u.opts.MaxSessions {
		u.evictLocked(now)
	}
	u.sessions.m[s.id] = s
	u.sessions.mu.Unlock()
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: s.id, Path: "/ui/",
		Expires: s.expires, MaxAge: int(s.expires.Sub(now).Seconds()),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure(r),
	})
	return s
}

// evictLocked makes room: expired sessions go, then the oldest of those
// never signed in, then the oldest.
func (u *UI) evictLocked(now time.Time) {
	for id, s := range u.sessions.m {
		if now.After(s.expires) {
			delete(u.sessions.m, id)
		}
	}
	for _, authed := range []bool{false, true} {
		for len(u.sessions.m) >= u.opts.MaxSessions {
			var oldest *session
			for _, s := range u.sessions.m {
				if s.authed == authed && (oldest == nil || s.created.Before(oldest.created)) {
					oldest = s
				}
			}
			if oldest == nil {
				break
			}
			delete(u.sessions.m, oldest.id)
		}
	}
}

// secure tells whether the browser reached the host over TLS (directly or
// through a proxy that says so): the cookie is then Secure.
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// lookup finds the request's session; nil when it has none that is valid.
func (u *UI) lookup(r *http.Request) *session {
	c, err := r.Cookie(CookieName)
	if err != nil || c.Value == "" {
		return nil
	}
	now := u.opts.Now()
	u.sessions.mu.Lock()
	defer u.sessions.mu.Unlock()
	s := u.sessions.m[c.Value]
	if s == nil {
		return nil
	}
	if now.After(s.expires) {
		delete(u.sessions.m, s.id)
		return nil
	}
	if s.authed {
		// A session belongs to the token it signed in with.
		var cur [32]byte
		if t := u.token.Load(); t != nil {
			cur = *t
		}
		if subtle.ConstantTimeCompare(cur[:], s.token[:]) != 1 {
			delete(u.sessions.m, s.id)
			return nil
		}
	}
	return s
}

func (u *UI) dropSession(s *session) {
	u.sessions.mu.Lock()
	delete(u.sessions.m, s.id)
	u.sessions.mu.Unlock()
}

type sessionKey struct{}

func sessionOf(r *http.Request) *session {
	s, _ := r.Context().Value(sessionKey{}).(*session)
	return s
}

func withSession(r *http.Request, s *session) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), sessionKey{}, s))
}

// authed guards a page: it needs a signed-in session (on an open
// dashboard one is made on the first visit), and a POST needs the
// session's CSRF token, in the form field csrf or the X-CSRF-Token header.
func (u *UI) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := u.lookup(r)
		if s != nil && !s.authed && u.open() {
			s = nil // a sign-in form's session on a dashboard opened since
		}
		if s == nil && u.open() {
			s = u.newSession(w, r, true)
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if !u.checkCSRF(r, s) {
				u.render(w, withSession(r, s), http.StatusForbidden, "error", view{Title: "Forbidden",
					Error: "This form did not carry a valid CSRF token (it may have expired, or come from another site). Reload the page and try again."})
				return
			}
		}
		if s == nil || !s.authed {
			if r.Method == http.MethodGet {
				redirect(w, r, "/ui/signin?next="+url.QueryEscape(r.URL.RequestURI()))
				return
			}
			u.render(w, r, http.StatusUnauthorized, "error", view{Title: "Signed out", Error: "Your session has ended: sign in again."})
			return
		}
		h(w, withSession(r, s))
	}
}

// checkCSRF compares the request's CSRF token with its session's in
// constant time.
func (u *UI) checkCSRF(r *http.Request, s *session) bool {
	if s == nil {
		return false
	}
	if err := r.ParseForm(); err != nil {
		return false
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostForm.Get("csrf")
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}

// safeNext is where to go after sign-in: a dashboard path, nothing else.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "/ui//") || strings.ContainsAny(next, "\\\r\n") {
		return "/ui/"
	}
	return next
}

func (u *UI) signinPage(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if u.open() {
		redirect(w, r, next)
		return
	}
	s := u.lookup(r)
	if s != nil && s.authed {
		redirect(w, r, next)
		return
	}
	if s == nil {
		s = u.newSession(w, r, false)
	}
	u.render(w, withSession(r, s), http.StatusOK, "signin", view{Title: "Sign in", Layers: []string{}, Data: map[string]string{"Next": next}})
}

// signin checks the admin token (SHA-256 of both compared in constant
// time) and replaces the sign-in session by a signed-in one with a new id.
func (u *UI) signin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	s := u.lookup(r)
	if !u.checkCSRF(r, s) {
		u.render(w, withSession(r, s), http.StatusForbidden, "error", view{Title: "Forbidden", Layers: []string{},
			Error: "The sign-in form did not carry a valid CSRF token (it may have expired). Reload the sign-in page and try again."})
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	if u.open() {
		redirect(w, r, next)
		return
	}
	form := map[string]string{"Next": next}
	// Failed sign-ins draw on a host-wide budget; while it is spent, no
	// token is even compared.
	if u.signins.Tokens() < 1 {
		u.render(w, withSession(r, s), http.StatusTooManyRequests, "signin", view{Title: "Sign in", Layers: []string{}, Data: form,
			Error: "Too many failed sign-ins; wait a few seconds and try again."})
		return
	}
	want := u.token.Load()
	got := sha256.Sum256([]byte(r.PostForm.Get("token")))
	if want == nil || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		u.signins.Allow()
		u.log.Warn("dashboard: a sign-in with a wrong token was refused", "remote", r.RemoteAddr)
		u.render(w, withSession(r, s), http.StatusUnauthorized, "signin", view{Title: "Sign in", Layers: []string{}, Data: form,
			Error: "That is not the admin token. It is service { admin_token } of the host's configuration."})
		return
	}
	u.dropSession(s)
	u.newSession(w, r, true)
	u.log.Info("dashboard: signed in", "remote", r.RemoteAddr)
	redirect(w, r, next)
}

func (u *UI) signout(w http.ResponseWriter, r *http.Request) {
	u.dropSession(sessionOf(r))
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/ui/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure(r)})
	redirect(w, r, "/ui/signin")
}
