package banksim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxBody is the largest request body the sandbox reads.
const maxBody = 1 << 20

// errorBody is the JSON of every error answer:
// {"error":{"code":"…","message":"…"}}.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// requestError is a request the sandbox refuses before doing anything.
type requestError struct {
	status  int
	code    string
	message string
}

func (e *requestError) Error() string { return e.message }

func badRequest(format string, args ...any) *requestError {
	return &requestError{status: http.StatusBadRequest, code: "invalid_request", message: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing to do
}

// decodeBody reads one JSON object of at most maxBody bytes into v, refusing
// unknown fields and trailing data.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) *requestError {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		if e := tooLarge(err); e != nil {
			return e
		}
		return badRequest("body must hold exactly one JSON object, with nothing after it")
	}
	return nil
}

func decodeError(err error) *requestError {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case tooLarge(err) != nil:
		return tooLarge(err)
	case errors.Is(err, io.EOF):
		return badRequest("body is empty: send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("body ends in the middle of its JSON")
	case errors.As(err, &syntax):
		return badRequest("body is not valid JSON (at byte %d)", syntax.Offset)
	case errors.As(err, &typ) && typ.Field != "":
		return badRequest("field %q must be %s, not %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)
	case errors.As(err, &typ):
		return badRequest("body must be a JSON object, not %s", typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badRequest("body has an unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return badRequest("body could not be read: %v", err)
}

func tooLarge(err error) *requestError {
	var big *http.MaxBytesError
	if !errors.As(err, &big) {
		return nil
	}
	return &requestError{status: http.StatusRequestEntityTooLarge, code: "body_too_large",
		message: fmt.Sprintf("body is larger than %d bytes", big.Limit)}
}

func jsonKind(kind string) string {
	switch {
	case strings.HasPrefix(kind, "int"), strings.HasPrefix(kind, "uint"):
		return "an integer (minor units, no decimals or exponents)"
	case kind == "float64", kind == "float32":
		return "a number"
	case kind == "string":
		return "a string"
	case kind == "slice":
		return "an array"
	case kind == "bool":
		return "true or false"
	}
	return "a " + kind
}
