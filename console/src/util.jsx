// Small shared pieces: the router, the signed-in identity, formatting and
// a few components every page uses.
import { createContext } from 'preact';
import { useContext, useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';

// ---- router (History API; the server answers index.html for /ui/* paths)

const listeners = new Set();

export function navigate(to, { replace = false } = {}) {
  if (to === location.pathname + location.search) return;
  history[replace ? 'replaceState' : 'pushState'](null, '', to);
  listeners.forEach((f) => f());
}

export function useLocation() {
  const [, force] = useState(0);
  useEffect(() => {
    const f = () => force((x) => x + 1);
    listeners.add(f);
    addEventListener('popstate', f);
    return () => { listeners.delete(f); removeEventListener('popstate', f); };
  }, []);
  return { path: location.pathname, query: new URLSearchParams(location.search) };
}

// setQuery replaces the current URL's query (filters survive a reload).
export function setQuery(o) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(o)) if (v !== '' && v !== undefined && v !== null && v !== false) p.set(k, String(v));
  const s = p.toString();
  navigate(location.pathname + (s ? '?' + s : ''), { replace: true });
}

export function Link({ href, children, ...rest }) {
  const onClick = (e) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(href);
  };
  return <a href={href} onClick={onClick} {...rest}>{children}</a>;
}

// ---- identity: GET /api/whoami, and what the token's scopes allow

export const Me = createContext(null);
export const useMe = () => useContext(Me);

// can says whether the identity holds scope (admin holds every scope;
// exec:read-any implies exec:read).
export function can(me, scope) {
  if (!me) return false;
  const s = me.scopes || [];
  return s.includes('admin') || s.includes(scope) || (scope === 'exec:read' && s.includes('exec:read-any'));
}

// ---- formatting

// toDate reads the API's times tolerantly: RFC 3339 strings, or unix
// seconds (the 1.5 routes), or milliseconds.
export function toDate(v) {
  if (v === undefined || v === null || v === '' || v === 0) return null;
  if (typeof v === 'number') return new Date(v < 1e12 ? v * 1000 : v);
  if (/^\d+$/.test(v)) return toDate(Number(v));
  const d = new Date(v);
  return isNaN(d) || d.getUTCFullYear() < 1971 ? null : d;
}

export function fmtTime(v) {
  const d = toDate(v);
  if (!d) return '—';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function fmtAgo(v, now = Date.now()) {
  const d = toDate(v);
  if (!d) return '—';
  const s = Math.round((now - d.getTime()) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function fmtBytes(n) {
  if (n === null || n === undefined || isNaN(n)) return '—';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = Number(n);
  while (Math.abs(v) >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${i ? v.toFixed(v < 10 ? 1 : 0) : Math.round(v)} ${u[i]}`;
}

export const fmtPct = (v) => (v === null || v === undefined ? '—' : `${Number(v).toFixed(1)} %`);

export function fmtDuration(sec) {
  sec = Math.max(0, Math.round(sec));
  const d = Math.floor(sec / 86400), h = Math.floor((sec % 86400) / 3600), m = Math.floor((sec % 3600) / 60);
  if (d) return `${d} d ${h} h`;
  if (h) return `${h} h ${m} min`;
  if (m) return `${m} min ${sec % 60} s`;
  return `${sec} s`;
}

// ---- data hooks

// usePoll runs load now, on every change of deps and every `every` ms
// while the tab is visible; it returns { data, error, loading, reload }.
export function usePoll(load, deps, every = 0) {
  const [state, setState] = useState({ data: undefined, error: null, loading: true });
  const seq = useRef(0);
  const run = async () => {
    const n = ++seq.current;
    try {
      const data = await load();
      if (n === seq.current) setState({ data, error: null, loading: false });
    } catch (error) {
      if (n === seq.current) setState((s) => ({ data: s.data, error, loading: false }));
    }
  };
  useEffect(() => {
    setState((s) => ({ ...s, loading: true }));
    run();
    if (!every) return () => { seq.current++; };
    const t = setInterval(() => { if (document.visibilityState === 'visible') run(); }, every);
    return () => { clearInterval(t); seq.current++; };
  }, deps);
  return { ...state, reload: run };
}

// ---- API errors in forms

// fieldOf names the request field a 400 is about: the server's messages
// start with "invalid parameter <field>:", "missing parameter <field>" or
// "<field>: …" ("package or version: give one" names package). A check of
// the page's own says its field in err.field.
export function fieldOf(err) {
  if (err && err.field) return err.field;
  if (!err || err.status !== 400) return '';
  const m = /^(?:invalid parameter |missing parameter )?([a-z][a-z0-9_]*)(?=$|:| and | or )/.exec(err.message || '');
  return m ? m[1] : '';
}

// useInvalidField marks the control of form (a ref) that the error's field
// names (aria-invalid, focused); alias maps a request field to the
// control's name where they differ. A layout effect, so the mark lands in
// the same commit as the error box that names it, never a frame later.
export function useInvalidField(form, err, alias = {}) {
  useLayoutEffect(() => {
    const el = form.current;
    if (!el) return;
    el.querySelectorAll('[aria-invalid]').forEach((x) => x.removeAttribute('aria-invalid'));
    const f = fieldOf(err);
    if (!f) return;
    const c = el.querySelector(`[name="${alias[f] || f}"]`);
    if (c) {
      c.setAttribute('aria-invalid', 'true');
      c.focus();
    }
  }, [err]);
}

// ---- components

export function ErrorBox({ error }) {
  if (!error) return null;
  return (
    <div class="error" role="alert">
      {error.status ? <b>{error.status} </b> : null}{error.message}
      {error.reqid ? <span class="muted"> (request {error.reqid})</span> : null}
    </div>
  );
}

export function Progress({ value, max, label }) {
  const pct = max > 0 ? Math.min(100, (100 * value) / max) : 0;
  return (
    <div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax={max || 100} aria-valuenow={value} aria-label={label}>
      <div class="bar" style={{ width: pct + '%' }} />
      <span>{label}</span>
    </div>
  );
}

// TransferStatus shows a file transfer's progress (xfer: { what, done,
// total }, or null when none runs), the note of the last one that ended,
// and the error.
export function TransferStatus({ xfer, note, error }) {
  return (
    <>
      {xfer ? <Progress value={xfer.done} max={xfer.total} label={`${xfer.what} ${fmtBytes(xfer.done)}${xfer.total ? ' of ' + fmtBytes(xfer.total) : ''}`} /> : null}
      {note ? <div class="note" role="status">{note}</div> : null}
      <ErrorBox error={error} />
    </>
  );
}

// SortHeader is a column header that sorts a table: key, or -key for
// descending, in sort.
export function SortHeader({ k, sort, onSort, children }) {
  const dir = sort === k ? 'ascending' : sort === '-' + k ? 'descending' : 'none';
  const next = sort === k ? '-' + k : k;
  return (
    <th aria-sort={dir}>
      <button type="button" class="sort" onClick={() => onSort(next)}>
        {children}<span aria-hidden="true">{dir === 'ascending' ? ' ▲' : dir === 'descending' ? ' ▼' : ''}</span>
      </button>
    </th>
  );
}

export function Labels({ labels }) {
  const ks = Object.keys(labels || {}).sort();
  if (!ks.length) return <span class="muted">—</span>;
  return <span class="labels">{ks.map((k) => <span class="chip" key={k}>{k}={labels[k]}</span>)}</span>;
}

// parseLabels reads "k=v, k2=v2" into an object; throws on bad input.
export function parseLabels(s) {
  const out = {};
  for (const part of s.split(/[,\n]/)) {
    const t = part.trim();
    if (!t) continue;
    const i = t.indexOf('=');
    if (i <= 0) throw new Error(`"${t}": write key=value`);
    out[t.slice(0, i).trim()] = t.slice(i + 1).trim();
  }
  return out;
}

export const labelsText = (l) => Object.keys(l || {}).sort().map((k) => `${k}=${l[k]}`).join(', ');

export function StateBadge({ state }) {
  return <span class={'state state-' + (state || 'unknown')}>{state || '—'}</span>;
}
