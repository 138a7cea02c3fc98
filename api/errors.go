package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// Error codes of the JSON error body. Endpoints may add their own.
const (
	CodeBadRequest       = "bad_request"
	CodeUnauthorized     = "unauthorized"
	CodeForbidden        = "forbidden"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeConflict         = "conflict"
	CodeTooLarge         = "too_large"
	CodeUnsupportedMedia = "unsupported_media_type"
	CodeInternal         = "internal"
	CodeUnavailable      = "unavailable"
)

// Error is an API error: the HTTP status and the JSON body
// {"error": Message, "code": Code}. Handlers return it to choose the status;
// the Client returns it for every non-2xx answer.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"error"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("api: %d %s: %s", e.Status, e.Code, e.Message)
}

// Errorf makes an *Error with status, code and a formatted message.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// IsStatus reports whether err is (or wraps) an *Error with HTTP status.
func IsStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

// WriteJSON writes v as a JSON response with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		WriteError(w, fmt.Errorf("encode response: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// WriteError writes err as a JSON error. An *Error (possibly wrapped) keeps
// its status and code; anything else is a 500 with code "internal".
func WriteError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: err.Error()}
	}
	if e.Status < 400 || e.Status > 599 {
		e = &Error{Status: http.StatusInternalServerError, Code: e.Code, Message: e.Message}
	}
	b, _ := json.Marshal(e) // two strings: cannot fail
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	_, _ = w.Write(append(b, '\n'))
}

// DefaultMaxBody is the request body limit of DecodeJSON and JSON when the
// route does not set one.
const DefaultMaxBody = 1 << 20

// DecodeJSON decodes the request body into v: at most maxBytes (DefaultMaxBody
// if <= 0), one JSON value, no unknown fields, no trailing data, and a JSON
// content type if one is given. Its errors are *Error values (400, 413, 415)
// ready for WriteError. An empty body leaves v as it is.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any, maxBytes int64) error {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBody
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return Errorf(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "content type %q, want application/json", ct)
		}
	}
	body := http.MaxBytesReader(w, r.Body, maxBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if errors.Is(err, io.EOF) {
		return nil // empty body
	}
	if err == nil {
		// Exactly one value: anything but whitespace after it is an error.
		if _, err2 := dec.Token(); !errors.Is(err2, io.EOF) {
			err = errors.New("trailing data after the JSON value")
			var mbe *http.MaxBytesError
			if errors.As(err2, &mbe) {
				err = err2
			}
		}
	}
	if err == nil {
		return nil
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return Errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "request body larger than %d bytes", mbe.Limit)
	}
	return Errorf(http.StatusBadRequest, CodeBadRequest, "invalid JSON body: %v", err)
}

// JSON adapts a typed function to an http.Handler: the request body (if any)
// is decoded into In with DecodeJSON, f runs with the request (for its
// context and path values), and its result is written as JSON with status
// 200, or its error with WriteError. Use struct{} for In when the endpoint
// takes no body.
func JSON[In, Out any](f func(r *http.Request, in In) (Out, error)) http.Handler {
	return JSONLimit(DefaultMaxBody, f)
}

// JSONLimit is JSON with a request body limit of maxBytes.
func JSONLimit[In, Out any](maxBytes int64, f func(r *http.Request, in In) (Out, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in In
		if err := DecodeJSON(w, r, &in, maxBytes); err != nil {
			WriteError(w, err)
			return
		}
		out, err := f(r, in)
		if err != nil {
			WriteError(w, err)
			return
		}
		WriteJSON(w, http.StatusOK, out)
	})
}
