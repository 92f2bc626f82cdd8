package api

import (
	"errors"
	"net/http"

	japi "github.com/agentfleet/jkframe/api"

	"github.com/agentfleet/agent-server/internal/authz"
	"github.com/agentfleet/agent-server/internal/store"
)

// Output of commands belongs to the token that started them: another
// token reads it only with exec:read-any. A token limited by a selector
// sees only the fleet tasks and layouts it created (another token's task
// may cover agents outside its selector).

// errOthersOutput is the 403 of reading another token's output.
var errOthersOutput = &japi.Error{Code: http.StatusForbidden, Msg: "forbidden: the output belongs to another token's command; reading it needs scope " + string(authz.ExecReadAny)}

// mayReadOutput checks that r's token may read the output of task id.
func (s *Server) mayReadOutput(r *http.Request, taskID string) error {
	id, _ := IdentityFrom(r.Context())
	if id.Has(authz.ExecReadAny) {
		return nil
	}
	t, err := s.o.Store.GetTask(r.Context(), taskID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return mapError(err)
	}
	if err != nil || t.CreatedBy != id.Name {
		return errOthersOutput
	}
	return nil
}

// ownsOutput reports whether r's token may read the output of a task
// created by createdBy.
func ownsOutput(r *http.Request, createdBy string) bool {
	id, _ := IdentityFrom(r.Context())
	return id.Has(authz.ExecReadAny) || createdBy == id.Name
}

// visibleTask returns task id for r's token: 404 "not found: task" when it
// does not exist or, for a token limited by a selector, was created by
// another token.
func (s *Server) visibleTask(r *http.Request, taskID string) (store.Task, error) {
	t, err := s.o.Store.GetTask(r.Context(), taskID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Task{}, japi.NotFound("task")
	}
	if err != nil {
		return store.Task{}, mapError(err)
	}
	if id, _ := IdentityFrom(r.Context()); id.Limited() && t.CreatedBy != id.Name {
		return store.Task{}, japi.NotFound("task")
	}
	return t, nil
}
