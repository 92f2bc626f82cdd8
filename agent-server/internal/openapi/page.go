package openapi

import (
	"bytes"
	"encoding/json"
	"html/template"
	"slices"
	"strings"
)

// The docs page is rendered once, on the server, from the document: no
// script, no fetch, nothing from the internet.
var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#222}
h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
.op{border:1px solid #ddd;border-radius:4px;margin:1em 0;padding:.6em 1em}
.m{display:inline-block;min-width:4.5em;font-weight:bold;font-family:monospace}
.get{color:#0a6}.put{color:#a60}.post{color:#06a}.delete{color:#c22}
code,pre{font-family:ui-monospace,monospace;background:#f5f5f5;padding:0 .2em}
pre{padding:.5em;overflow:auto}
table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #ddd;padding:.2em .5em;text-align:left;vertical-align:top}
nav a{margin-right:1em}
</style></head><body>
<h1>{{.Title}} <small>{{.Version}}</small></h1>
<p>Machine-readable: <a href="/api/openapi.json">openapi.json</a> · <a href="/api/openapi.yaml">openapi.yaml</a> (bearer token needed)</p>
<pre>{{.Description}}</pre>
<h2>Routes</h2>
{{range .Ops}}<div class="op" id="{{.Anchor}}">
<div><span class="m {{.MethodLower}}">{{.Method}}</span> <code>{{.Path}}</code> — {{.Summary}}{{if .Public}} <em>(no token)</em>{{else if .Scope}} <em>(scope {{.Scope}})</em>{{end}}</div>
{{if .Description}}<p>{{.Description}}</p>{{end}}
{{if .Params}}<table><tr><th>parameter</th><th>in</th><th>type</th><th>required</th><th>description</th></tr>
{{range .Params}}<tr><td><code>{{.Name}}</code></td><td>{{.In}}</td><td>{{.Type}}</td><td>{{if .Required}}yes{{end}}</td><td>{{.Description}}</td></tr>
{{end}}</table>{{end}}
{{if .Body}}<p>Body: {{.Body}}</p>{{end}}
<p>Responses: {{range $i, $r := .Responses}}{{if $i}}, {{end}}<code>{{$r}}</code>{{end}}</p>
</div>
{{end}}
<h2>Schemas</h2>
{{range .Schemas}}<h3 id="schema-{{.Name}}">{{.Name}}</h3><pre>{{.JSON}}</pre>
{{end}}
</body></html>
`))

type pageOp struct {
	Method, MethodLower, Path, Anchor, Summary, Description, Body, Scope string
	Public                                                               bool
	Params                                                               []pageParam
	Responses                                                            []string
}

type pageParam struct {
	Name, In, Type, Description string
	Required                    bool
}

type pageSchema struct {
	Name, JSON string
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func mapOf(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// resolve follows a local $ref ("#/components/parameters/id").
func resolve(tree map[string]any, v map[string]any) map[string]any {
	ref := str(v, "$ref")
	if !strings.HasPrefix(ref, "#/") {
		return v
	}
	cur := any(tree)
	for _, part := range strings.Split(ref[2:], "/") {
		cur = mapOf(cur)[part]
	}
	if m := mapOf(cur); m != nil {
		return m
	}
	return v
}

func typeOf(schema map[string]any) string {
	if ref := str(schema, "$ref"); ref != "" {
		return ref[strings.LastIndex(ref, "/")+1:]
	}
	t := str(schema, "type")
	if t == "array" {
		return "array of " + typeOf(mapOf(schema["items"]))
	}
	return t
}

func render(tree map[string]any) ([]byte, error) {
	info := mapOf(tree["info"])
	data := struct {
		Title, Version, Description string
		Ops                         []pageOp
		Schemas                     []pageSchema
	}{Title: str(info, "title"), Version: str(info, "version"), Description: str(info, "description")}

	paths := mapOf(tree["paths"])
	keys := make([]string, 0, len(paths))
	for p := range paths {
		keys = append(keys, p)
	}
	slices.Sort(keys)
	for _, p := range keys {
		item := mapOf(paths[p])
		for _, meth := range methods {
			op := mapOf(item[meth])
			if op == nil {
				continue
			}
			po := pageOp{
				Method: strings.ToUpper(meth), MethodLower: meth, Path: p,
				Anchor:  meth + strings.NewReplacer("/", "-", "{", "", "}", "").Replace(p),
				Summary: str(op, "summary"), Description: str(op, "description"),
			}
			if sec, ok := op["security"].([]any); ok && len(sec) == 0 {
				po.Public = true
			}
			po.Scope, _ = op["x-scope"].(string)
			params, _ := op["parameters"].([]any)
			for _, raw := range params {
				pm := resolve(tree, mapOf(raw))
				req, _ := pm["required"].(bool)
				po.Params = append(po.Params, pageParam{Name: str(pm, "name"), In: str(pm, "in"), Type: typeOf(mapOf(pm["schema"])),
					Description: str(pm, "description"), Required: req})
			}
			if rb := mapOf(op["requestBody"]); rb != nil {
				for ct, c := range mapOf(rb["content"]) {
					po.Body = ct + " " + typeOf(mapOf(mapOf(c)["schema"]))
				}
			}
			for code := range mapOf(op["responses"]) {
				po.Responses = append(po.Responses, code)
			}
			slices.Sort(po.Responses)
			data.Ops = append(data.Ops, po)
		}
	}
	schemas := mapOf(mapOf(tree["components"])["schemas"])
	names := make([]string, 0, len(schemas))
	for n := range schemas {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		b, err := json.MarshalIndent(schemas[n], "", "  ")
		if err != nil {
			return nil, err
		}
		data.Schemas = append(data.Schemas, pageSchema{Name: n, JSON: string(b)})
	}
	var buf bytes.Buffer
	if err := pageTmpl.Execute(&buf, data); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
