package api

import (
	"errors"
	"net/http"
	"strings"

	japi "github.com/agentfleet/jkframe/api"

	"github.com/agentfleet/agent-server/internal/authz"
	"github.com/agentfleet/agent-server/internal/store"
	"github.com/agentfleet/agent-server/internal/tasks"
)

// Output of commands belongs to the token that started them: another
// token reads it only with exec:read-any. A token limited by a selector
// sees only the fleet tasks and layouts it created (another token's task
// may cover agents outside its selector).

// headerWithheld marks a reply from which another token's output was left
// out (the token lacks exec:read-any).
const (
	headerWithheld = "X-Output-Withheld"
	withheldValue  = "output of another token's task: needs scope exec:read-any"
)

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

// reachesAll checks, for a token limited by a selector, that every agent
// of ids (items may be comma-separated lists) is within it: 404 "not
// found: agent <id>" for the first that is not.
func (s *Server) reachesAll(r *http.Request, ids []string) error {
	id, _ := IdentityFrom(r.Context())
	if !id.Limited() {
		return nil
	}
	for _, item := range ids {
		for a := range strings.SplitSeq(item, ",") {
			if a = strings.TrimSpace(a); a == "" {
				continue
			}
			if err := s.reaches(r.Context(), id, a); err != nil {
				if errors.Is(err, errAgentNotFound) {
					return japi.NotFound("agent " + a)
				}
				return err
			}
		}
	}
	return nil
}

// limitSelector narrows a fleet task's selector to the agents a limited
// token reaches: its ids must all be within the token's selector, and the
// token's selector is added to a filter's labels.
func (s *Server) limitSelector(r *http.Request, sel *tasks.Selector) error {
	id, _ := IdentityFrom(r.Context())
	if !id.Limited() {
		return nil
	}
	if len(sel.IDs) > 0 {
		return s.reachesAll(r, sel.IDs)
	}
	if strings.TrimSpace(sel.Labels) == "" {
		sel.Labels = id.Selector
	} else {
		sel.Labels += "," + id.Selector
	}
	return nil
}
