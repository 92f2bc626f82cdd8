// What the forms that start a task share (Run, Install, Upgrade): the
// "Where" (agents picked by id or by selector — labels, text, OS — with a
// preview of how many agents of the type match and how many are online;
// the form state holds target, ids, labels, keyword and os), the rollout
// fields, the repository's packages, and starting the task.
import { useEffect, useState } from 'preact/hooks';
import { api, qs } from '../api.js';
import { ErrorBox, can, fmtBytes, navigate, usePoll } from '../util.jsx';

// selectorOf builds the API's selector from the form.
export function selectorOf(f) {
  if (f.target === 'ids') return { ids: f.ids.split(/[\s,]+/).filter(Boolean) };
  const sel = {};
  if (f.labels.trim()) sel.labels = f.labels.trim();
  if (f.keyword.trim()) sel.keyword = f.keyword.trim();
  if (f.os) sel.os = f.os;
  return sel;
}

// limitOf reads a rollout limit field: N or N%; undefined when empty.
export function limitOf(s) {
  const t = s.trim();
  if (!t) return undefined;
  return /%$/.test(t) ? t : Number(t);
}

// targetFields are the initial form fields of a Target, from the page's
// query (?ids=a,b from the fleet page's selection, ?labels=).
export function targetFields(query) {
  return {
    target: query.get('ids') ? 'ids' : 'selector',
    ids: (query.get('ids') || '').split(',').join('\n'),
    labels: query.get('labels') || '', keyword: '', os: '',
  };
}

// Choice is a row of radio buttons: options are [value, label] pairs, value
// the chosen one, set the form's setter of the field name.
export function Choice({ name, value, set, options }) {
  return (
    <div class="row">
      {options.map(([v, label]) => (
        <label class="radio" key={v}><input type="radio" name={name} value={v} checked={value === v} onChange={set} /> {label}</label>
      ))}
    </div>
  );
}

const capital = (s) => s.charAt(0).toUpperCase() + s.slice(1);

export function Target({ f, set, type = 'exec-agent' }) {
  const [matches, setMatches] = useState(null);
  useEffect(() => {
    if (f.target !== 'selector' || !type) { setMatches(null); return undefined; }
    const t = setTimeout(async () => {
      try {
        const base = { type, labels: f.labels.trim(), keyword: f.keyword.trim(), os: f.os, size: 1 };
        const [all, on] = await Promise.all([api('/api/agents' + qs(base)), api('/api/agents' + qs({ ...base, online: true }))]);
        setMatches({ all: all.total, online: on.total });
      } catch (e) { setMatches({ error: e.message }); }
    }, 300);
    return () => clearTimeout(t);
  }, [f.target, f.labels, f.keyword, f.os, type]);

  return (
    <fieldset>
      <legend>Where</legend>
      <Choice name="target" value={f.target} set={set('target')} options={[['selector', 'Selector'], ['ids', 'Agent ids']]} />
      {f.target === 'ids' ? (
        <label>{capital(type || 'agent')} ids (one per line or comma-separated)<textarea name="ids" rows="3" value={f.ids} onInput={set('ids')} /></label>
      ) : (
        <div class="row wrap">
          <label>Labels <input name="labels" placeholder="env=prod, !canary" value={f.labels} onInput={set('labels')} /></label>
          <label>Text <input name="keyword" placeholder="host name, IP, id" value={f.keyword} onInput={set('keyword')} /></label>
          <label>OS <select name="os" value={f.os} onChange={set('os')}>
            <option value="">any</option><option>linux</option><option>windows</option><option>darwin</option>
          </select></label>
          <span class="muted" data-testid="matches" aria-live="polite">
            {matches ? (matches.error ? matches.error : `${matches.all} ${type}s match, ${matches.online} online`) : ''}
          </span>
        </div>
      )}
    </fieldset>
  );
}

// Rollout is the fieldset of the rollout limits (form state concurrency,
// maxErrors, canary) and the form's own fields after them (children).
export function Rollout({ f, set, children }) {
  return (
    <fieldset>
      <legend>Rollout</legend>
      <div class="row wrap">
        <label>Concurrency <input name="concurrency" size="6" placeholder="all" value={f.concurrency} onInput={set('concurrency')} title="N or N%" /></label>
        <label>Max errors <input name="max_errors" size="6" placeholder="no limit" value={f.maxErrors} onInput={set('maxErrors')} title="failures tolerated: N or N%" /></label>
        <label>Canary <input name="canary" type="number" min="0" size="4" value={f.canary} onInput={set('canary')} title="N hosts first; the rest only if all pass" /></label>
        {children}
      </div>
    </fieldset>
  );
}

// usePackages lists the repository's packages when the token may read it
// (data null otherwise).
export function usePackages(me) {
  const repo = can(me, 'packages:read');
  return usePoll(() => (repo ? api('/api/packages').then((r) => r.payload.packages || []) : Promise.resolve(null)), [repo]);
}

// PackageField picks a package of the repository (a list of those kept,
// with kind and size) or, for a token that may not read the repository,
// takes its name.
export function PackageField({ name, value, set, pkgs, keep = () => true }) {
  if (pkgs.data === null) return <label>Package name <input name={name} value={value} onInput={set} /></label>;
  return (
    <>
      <label>Package <select name={name} value={value} onChange={set}>
        <option value="">choose…</option>
        {(pkgs.data || []).filter(keep).map((p) => <option key={p.name} value={p.name}>{p.name} ({p.kind}, {fmtBytes(p.size)})</option>)}
      </select></label>
      <ErrorBox error={pkgs.error} />
    </>
  );
}

// useStart posts a request that creates a task and opens the task's page;
// a refusal is kept in err (setErr for the form's own checks).
export function useStart(path) {
  const [err, setErr] = useState(null);
  const [busy, setBusy] = useState(false);
  const start = async (body) => {
    setErr(null);
    setBusy(true);
    try {
      const r = (await api(path, { method: 'POST', body })).payload;
      navigate('/ui/tasks/' + encodeURIComponent(r.id));
    } catch (e) {
      setErr(e);
      setBusy(false);
    }
  };
  return { start, busy, err, setErr };
}
