package api

import (
	"encoding/json"
	"net/http"
)

// Error codes in JSON error bodies.
const (
	codeBadKey           = "bad_key"
	codeBadParameter     = "bad_parameter"
	codeBadContext       = "bad_context"
	codeTooLarge         = "too_large"
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeUnavailable      = "unavailable"
	codeNotReady         = "not_ready"
	codeTimeout          = "timeout"
	codeInternal         = "internal"
	codeUnknownNode      = "unknown_node"
	codeNodeAlive        = "node_alive"
	codeNotMember        = "not_member"
	codeLastMember       = "last_member"
	codeNotClustered     = "not_clustered"
)

// errorBody is the JSON shape of every error response.
type errorBody struct {
	Error    string `json:"error"`
	Code     string `json:"code"`
	Acks     *int   `json:"acks,omitempty"`
	Required *int   `json:"required,omitempty"`
	Context  string `json:"context,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":"encode response","code":"internal"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody{Error: msg, Code: code})
}

// readOnly answers 405 and reports false unless r is a GET or HEAD of the
// endpoint named what.
func readOnly(w http.ResponseWriter, r *http.Request, what string) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	writeError(w, http.StatusMethodNotAllowed, codeMethodNotAllowed, "method "+r.Method+" not allowed on "+what)
	return false
}
