package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/dotkv/dotkv/client"
	"github.com/dotkv/dotkv/replica"
)

// Error codes in JSON error bodies (declared in package client).
const (
	codeBadKey           = client.CodeBadKey
	codeBadParameter     = client.CodeBadParameter
	codeBadContext       = client.CodeBadContext
	codeTooLarge         = client.CodeTooLarge
	codeNotFound         = client.CodeNotFound
	codeMethodNotAllowed = client.CodeMethodNotAllowed
	codeUnavailable      = client.CodeUnavailable
	codeNotReady         = client.CodeNotReady
	codeTimeout          = client.CodeTimeout
	codeInternal         = client.CodeInternal
	codeUnknownNode      = client.CodeUnknownNode
	codeNodeAlive        = client.CodeNodeAlive
	codeNotMember        = client.CodeNotMember
	codeLastMember       = client.CodeLastMember
	codeNotClustered     = client.CodeNotClustered
	codeTooManySiblings  = client.CodeTooManySiblings
	codeObjectTooLarge   = client.CodeObjectTooLarge
	codeShuttingDown     = client.CodeShuttingDown
	codePartialWrite     = client.CodePartialWrite
	codeUnauthorized     = client.CodeUnauthorized
	codeForbidden        = client.CodeForbidden
)

// errorBody is the JSON shape of every error response.
type errorBody = client.ErrorBody

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

// writeFailed answers a failed PUT or DELETE: a refusal for a limit of
// the key's record (409 too_many_siblings, 413 object_too_large: nothing
// was written), a node shutting down (503 shutting_down: nothing was
// written), or any other error as requestError does.
func (s *Server) writeFailed(w http.ResponseWriter, r *http.Request, err error) {
	var le *replica.LimitError
	switch {
	case errors.As(err, &le) && errors.Is(le, replica.ErrRecordTooLarge):
		writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{
			Error: "nothing written: " + le.Error() + " (--max-record)", Code: codeObjectTooLarge,
			Siblings: &le.Siblings, RecordBytes: &le.Would, MaxRecordBytes: &le.Max,
		})
	case errors.As(err, &le):
		writeJSON(w, http.StatusConflict, errorBody{
			Error: "nothing written: " + le.Error() + " (--max-siblings)", Code: codeTooManySiblings,
			Siblings: &le.Siblings, MaxSiblings: &le.Max,
		})
	case errors.Is(err, replica.ErrClosed):
		writeError(w, http.StatusServiceUnavailable, codeShuttingDown, "nothing written: the node is shutting down; retry on another node")
	default:
		s.requestError(w, r, "write", err)
	}
}
