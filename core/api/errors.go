package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/synclayer/synclayer/core/internal/redact"
)

// Every error answer is the JSON envelope
//
//	{"error": {"code": "...", "message": "..."}}
//
// with a message that says what was wrong and how to fix it, and names no
// internals: no Go types or struct fields, no plugin socket paths. That
// includes the answers net/http writes itself before any handler runs
// (431, malformed requests): see rewriteServerError.

// errorBody is the error envelope.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var b errorBody
	b.Error.Code, b.Error.Message = code, msg
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// readBody reads the whole request body, answering 413 past MaxBodyBytes
// and 408 when the client sends it too slowly (see Limits). ok is false
// when an answer was written.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(r.Body)
	if err == nil {
		return body, true
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", "the request body is larger than "+strconv.Itoa(MaxBodyBytes)+" bytes")
	case errors.Is(err, os.ErrDeadlineExceeded):
		lim := s.opts.Limits
		writeError(w, http.StatusRequestTimeout, "body_timeout", fmt.Sprintf(
			"the request body arrived too slowly: after the first %s it must come at %d bytes/s or more, with no pause longer than %s",
			lim.BodyGrace, lim.BodyMinRate, lim.BodyIdleTimeout))
	default:
		writeError(w, http.StatusBadRequest, "bad_body", "could not read the request body: the connection failed or the body was shorter than its Content-Length")
	}
	return nil, false
}

// decodeBody reads an optional JSON object body into v: empty is fine;
// anything but one JSON object with known fields is 400 bad_json (null,
// arrays, trailing data after the object, unknown fields, wrong types).
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, ok := s.readBody(w, r)
	if !ok {
		return false
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return true
	}
	if trimmed[0] != '{' {
		kind := "a " + jsonKind(trimmed)
		if trimmed[0] == 'n' {
			kind = "null"
		}
		writeError(w, http.StatusBadRequest, "bad_json", "the body must be a JSON object, not "+kind+"; send {} for no options")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "bad_json", jsonErrorMessage(err, v))
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		writeError(w, http.StatusBadRequest, "bad_json", fmt.Sprintf("the body has more after its JSON object (from byte %d): send exactly one object", dec.InputOffset()))
		return false
	}
	return true
}

// jsonKind names the JSON value that starts b, for messages.
func jsonKind(b []byte) string {
	switch {
	case len(b) == 0:
		return "nothing"
	case b[0] == '[':
		return "array"
	case b[0] == '"':
		return "string"
	case b[0] == 't' || b[0] == 'f':
		return "boolean"
	case b[0] == '-' || (b[0] >= '0' && b[0] <= '9'):
		return "number"
	}
	return "value that is not JSON"
}

// jsonErrorMessage turns an encoding/json error into a message in terms
// of the JSON the client sent: field names as they are in JSON and JSON
// types, never Go's.
func jsonErrorMessage(err error, v any) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		got, _, _ := strings.Cut(te.Value, " ")
		if got == "bool" {
			got = "boolean"
		}
		if te.Field == "" {
			return "the body must be a JSON object, not a " + got
		}
		return fmt.Sprintf("field %q must be %s, not a %s", te.Field, jsonTypeName(te.Type), got)
	case errors.As(err, &se):
		return fmt.Sprintf("the body is not valid JSON at byte %d: %s", se.Offset, se.Error())
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the body is not valid JSON: it ends before the object does"
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		msg := "unknown field " + name
		if fields := jsonFields(v); len(fields) > 0 {
			msg += "; the fields are " + strings.Join(fields, ", ")
		}
		return msg
	}
	return "the body is not the expected JSON object"
}

// jsonTypeName says what JSON a Go type accepts.
func jsonTypeName(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}

// jsonFields lists the JSON names of the fields of the struct v points to.
func jsonFields(v any) []string {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// probeMethods are the methods tried to find what a path allows.
var probeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// noRoute answers a request no route took: 405 with Allow when the path
// exists for other methods, else 404. (ServeMux would answer 405 itself,
// as text, but the catch-all pattern that makes every 404 JSON matches
// every method first.)
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	if allow := s.allowed(r); len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
			fmt.Sprintf("%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, strings.Join(allow, ", ")))
		return
	}
	writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path+"; GET /v1/openapi.json lists them")
}

// allowed lists the methods a route takes for the request's path.
func (s *Server) allowed(r *http.Request) []string {
	var out []string
	for _, m := range probeMethods {
		if m == r.Method {
			continue
		}
		probe := *r
		probe.Method = m
		if _, pattern := s.mux.Handler(&probe); pattern != catchAll {
			out = append(out, m)
		}
	}
	return out
}

// scrubInternals takes host internals out of an error text shown to API
// clients: plugin socket paths. The server log keeps the full text.
func scrubInternals(s string) string { return redact.Internals(s) }

// rawServerError matches an answer net/http writes straight to the
// connection when it cannot parse a request (before any handler): a status
// line, exactly these two headers, and a text body.
var rawServerError = regexp.MustCompile(`^HTTP/1\.1 (\d{3}) ([^\r\n]*)\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n`)

// rewriteServerError turns such an answer into the JSON envelope; ok is
// false for anything else (every answer of a handler carries a Date
// header, and its headers are sorted, so none looks like this).
func rewriteServerError(b []byte, maxHeaderBytes int) ([]byte, bool) {
	m := rawServerError.FindSubmatch(b)
	if m == nil {
		return nil, false
	}
	status, _ := strconv.Atoi(string(m[1]))
	_, detail, _ := strings.Cut(string(m[2]), ": ")
	var code, msg string
	switch status {
	case http.StatusRequestHeaderFieldsTooLarge:
		code = "headers_too_large"
		msg = fmt.Sprintf("the request line and headers are larger than %d bytes: send fewer or smaller headers", maxHeaderBytes)
	case http.StatusNotImplemented:
		code = "unsupported_transfer_encoding"
		msg = "the request's Transfer-Encoding is not supported: send the body with Content-Length, or chunked"
	default:
		code = "bad_request"
		msg = "the request is not valid HTTP/1.1"
		if detail != "" {
			msg += ": " + detail
		} else {
			msg += " (a malformed request line, a header name or value with bytes HTTP does not allow, or a bad Content-Length)"
		}
	}
	var e errorBody
	e.Error.Code, e.Error.Message = code, msg
	return rawAnswer(status, e, ""), true
}
