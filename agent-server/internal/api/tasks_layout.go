package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"

	japi "github.com/agentfleet/jkframe/api"

	"github.com/agentfleet/agent-server/internal/layout"
	"github.com/agentfleet/agent-server/internal/rollout"
	"github.com/agentfleet/agent-server/internal/store"
	"github.com/agentfleet/agent-server/internal/tasks"
)

// maxLayoutField bounds one multipart form value of POST /api/layout/run.
const maxLayoutField = 1 << 20

// layoutAudit is the detail of a layout's audit entry.
type layoutAudit struct {
	IDs      []string `json:"ids"`
	Mode     string   `json:"mode"`
	Continue bool     `json:"continue"`
	Name     string   `json:"name,omitempty"`
	Steps    int      `json:"steps,omitempty"`
}

// layoutRun reads the multipart form as it streams in: the archive is
// checked as it is read from the part, its files spooled under cache_dir
// (never held in memory), and refused at the first byte over a limit.
func (x *taskRoutes) layoutRun(w http.ResponseWriter, r *http.Request) (err error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		return japi.BadParam("Content-Type", "must be multipart/form-data")
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return japi.BadParam("body", err.Error())
	}
	fields := map[string][]string{}
	var l *layout.Layout
	var lerr error
	defer func() {
		if l != nil && err != nil { // RunLayout owns it once called
			l.Close()
		}
	}()
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return &japi.Error{Code: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("request body too large (limit %d bytes)", mbe.Limit)}
			}
			return japi.BadParam("body", "bad multipart form: "+err.Error())
		}
		name := part.FormName()
		if name == "file" {
			if l != nil || lerr != nil {
				return japi.BadParam("file", "given twice")
			}
			l, lerr = layout.Parse(part, x.lim, x.spoolDir)
			_, _ = io.Copy(io.Discard, part)
			continue
		}
		b, err := io.ReadAll(io.LimitReader(part, maxLayoutField+1))
		if err != nil {
			return japi.BadParam(name, err.Error())
		}
		if len(b) > maxLayoutField {
			return japi.BadParam(name, "too long")
		}
		fields[name] = append(fields[name], string(b))
	}
	one := func(k string) string {
		if v := fields[k]; len(v) > 0 {
			return strings.TrimSpace(v[len(v)-1])
		}
		return ""
	}
	req := tasks.LayoutRequest{IDs: fields["ids"], Mode: one("mode"), User: one("user"), Auth: one("auth")}
	SetAudit(r, "", layoutAudit{IDs: req.IDs, Mode: req.Mode})
	if c := one("continue"); c != "" {
		if req.Continue, err = strconv.ParseBool(c); err != nil {
			return japi.BadParam("continue", "must be true or false")
		}
	}
	for _, lim := range []struct {
		name string
		dst  *rollout.Limit
	}{{"concurrency", &req.Concurrency}, {"max_errors", &req.MaxErrors}} {
		if *lim.dst, err = rollout.ParseLimit(one(lim.name)); err != nil {
			return japi.BadParam(lim.name, "must be N or N%")
		}
	}
	if len(req.IDs) == 0 {
		return japi.MissingParam("ids")
	}
	if lerr != nil {
		return mapError(lerr)
	}
	if l == nil {
		return japi.MissingParam("file")
	}
	if err := x.s.reachesAll(r, req.IDs); err != nil {
		return err
	}
	ll := l
	l = nil // RunLayout takes it over
	id, err := x.svc.RunLayout(r.Context(), req, ll, actor(r))
	au := layoutAudit{IDs: req.IDs, Mode: req.Mode, Continue: req.Continue, Name: ll.Name, Steps: len(ll.Steps)}
	if err != nil {
		SetAudit(r, "", au)
		return mapError(err)
	}
	SetAudit(r, id, au)
	japi.OK(w, r, id)
	return nil
}

func (x *taskRoutes) layoutGet(w http.ResponseWriter, r *http.Request) error {
	t, err := x.s.visibleTask(r, r.PathValue("id"))
	if err != nil {
		return err
	}
	st, err := x.svc.Layout(r.Context(), r.PathValue("id"))
	if err != nil {
		return mapError(err)
	}
	if !ownsOutput(r, t.CreatedBy) {
		for i := range st.Nodes {
			for k := range st.Nodes[i].Steps {
				st.Nodes[i].Steps[k].Output = ""
			}
		}
		w.Header().Set(headerWithheld, withheldValue)
	}
	japi.OK(w, r, st)
	return nil
}

func (x *taskRoutes) layoutCancel(w http.ResponseWriter, r *http.Request) error {
	return x.doCancel(w, r, store.KindLayout)
}

// layoutFile serves a file a layout's pull step stored: ?agent=&path=.
func (x *taskRoutes) layoutFile(w http.ResponseWriter, r *http.Request) error {
	p := japi.Params(r)
	agent, rel := p.Required("agent"), p.Required("path")
	if err := p.Err(); err != nil {
		return err
	}
	id := r.PathValue("id")
	SetAuditAgent(r, agent)
	if _, err := x.s.visibleTask(r, id); err != nil {
		return err
	}
	if err := x.s.mayReadOutput(r, id); err != nil {
		return err
	}
	if _, err := x.svc.Layout(r.Context(), id); err != nil {
		return mapError(err)
	}
	full, err := x.svc.PulledFile(id, agent, rel)
	if errors.Is(err, tasks.ErrNotFound) {
		return japi.NotFound("file")
	}
	if err != nil {
		return mapError(err)
	}
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": path.Base(rel)}))
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeFile(w, r, full)
	return nil
}
