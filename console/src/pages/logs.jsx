// Log collection: the projects (GET /api/logging/projects) with their
// nodes' status, a project's page (nodes, stored lines queried with filters
// and paged by the server's cursor, the live tail over SSE with pause and
// clear), and the project form (POST /api/logging/config) with start, stop
// and remove for tokens that hold logging:write.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, events, get, qs } from '../api.js';
import {
  ErrorBox, Link, StateBadge, can, fmtAgo, fmtBytes, fmtTime, navigate, setQuery, usePoll, useMe,
} from '../util.jsx';

const TYPES = ['logtail', 'docker', 'k8s'];

const projectState = (p) => (p.running ? 'running' : 'stopped');
// The seed spells a stopped node "stoped"; people read "stopped".
const nodeState = (s) => (s === 'stoped' ? 'stopped' : s);
const num = (v) => (typeof v === 'number' ? v : 0);

// collects says in a few words what a project collects.
export function collects(c) {
  if (!c) return '';
  if (c.type === 'docker') return `containers ${c.ct_name || ''}${c.ct_tag ? ' tag ' + c.ct_tag : ''}${c.dir ? ' files ' + c.dir : ''}`;
  if (c.type === 'k8s') return `pods ${c.ns || ''}/${(c.name || []).join(',')}${c.dir ? ' files ' + c.dir : ''}`;
  return c.dir || '';
}

function nodesText(p) {
  const nodes = p.nodes || [];
  const running = nodes.filter((n) => n.status === 'running').length;
  const offline = nodes.filter((n) => !n.online).length;
  return `${running}/${nodes.length} running${offline ? `, ${offline} offline` : ''}`;
}

const projectPath = (pid, tab) => '/ui/logs/' + encodeURIComponent(pid) + (tab && tab !== 'nodes' ? '?tab=' + tab : '');

export function Logs() {
  const me = useMe();
  const list = usePoll(() => get('/api/logging/projects'), [], 5000);
  const projects = list.data ? list.data.projects || [] : [];
  return (
    <section>
      <h1>Log collection</h1>
      <div class="toolbar">
        {can(me, 'logging:write') ? <Link class="button" href="/ui/logs/new">New project…</Link> : null}
        <span class="spacer" />
        <span aria-live="polite" class="muted">{list.data ? `${projects.length} project${projects.length === 1 ? '' : 's'}` : 'loading…'}</span>
      </div>
      <ErrorBox error={list.error} />
      {list.data && !projects.length ? <p class="muted">No project yet. A project tells log-agents which files, containers or pods to collect.</p> : null}
      {projects.length ? (
        <div class="table-wrap">
          <table class="grid logs">
            <thead><tr><th>Project</th><th>Type</th><th>State</th><th>Nodes</th><th>Collects</th><th>Lines read</th><th>Created</th></tr></thead>
            <tbody>{projects.map((p) => (
              <tr key={p.pid} data-project={p.pid}>
                <td><Link href={projectPath(p.pid)}>{p.pid}</Link></td>
                <td>{p.type}</td>
                <td><StateBadge state={projectState(p)} /></td>
                <td data-testid="nodes">{nodesText(p)}</td>
                <td class="mono small">{collects(p.config)}</td>
                <td>{(p.nodes || []).reduce((s, n) => s + num(n.stats && n.stats.lines), 0).toLocaleString('en')}</td>
                <td title={fmtTime(p.created)}>{fmtAgo(p.created)}</td>
              </tr>
            ))}</tbody>
          </table>
        </div>
      ) : null}
    </section>
  );
}

const TABS = [['nodes', 'Nodes'], ['query', 'Query'], ['tail', 'Live tail']];

export function LogProject({ pid, tab, query }) {
  const me = useMe();
  const [err, setErr] = useState(null);
  const [busy, setBusy] = useState(false);
  const p = usePoll(() => get('/api/logging/task_info' + qs({ pid })), [pid], 3000);
  const v = p.data;
  if (!v) return <section><h1>{pid}</h1><ErrorBox error={p.error} />{p.error ? null : <p class="loading">Loading…</p>}</section>;
  const act = async (action) => {
    if (action === 'remove' && !confirm(`Remove project ${pid}? Its nodes drop its state and its stored lines are deleted.`)) return;
    setBusy(true);
    setErr(null);
    try {
      await api('/api/logging/' + action, { method: 'POST', body: { pid } });
      if (action === 'remove') { navigate('/ui/logs'); return; }
      await p.reload();
    } catch (e) { setErr(e); } finally { setBusy(false); }
  };
  const write = can(me, 'logging:write');
  return (
    <section>
      <h1>{pid} <StateBadge state={projectState(v)} /></h1>
      <div class="toolbar">
        <Link href="/ui/logs">← projects</Link>
        {write && !v.running ? <button type="button" disabled={busy} onClick={() => act('start')}>Start</button> : null}
        {write && v.running ? <button type="button" class="secondary" disabled={busy} onClick={() => act('stop')}>Stop</button> : null}
        {write ? <Link class="button" href={'/ui/logs/' + encodeURIComponent(pid) + '/edit'}>Edit…</Link> : null}
        {write ? <button type="button" class="danger" disabled={busy} onClick={() => act('remove')}>Remove</button> : null}
      </div>
      <ErrorBox error={err || p.error} />
      <dl class="facts">
        <dt>Collects</dt><dd class="mono">{v.type}: {collects(v.config)}</dd>
        {v.exclude ? [<dt key="x">Exclude</dt>, <dd key="xd" class="mono">{v.exclude}</dd>] : null}
        <dt>Batches</dt><dd>{v.batch} lines · {fmtBytes(v.buffer)} · {v.interval} s</dd>
        <dt>Created</dt><dd>{fmtTime(v.created)} · version {v.version}</dd>
      </dl>
      <nav class="tabs" aria-label="Project sections">
        {TABS.map(([k, label]) => (
          <Link key={k} href={projectPath(pid, k)} aria-current={tab === k ? 'page' : undefined}>{label}</Link>
        ))}
      </nav>
      {tab === 'nodes' ? <Nodes nodes={v.nodes || []} /> : null}
      {tab === 'query' ? <Query pid={pid} query={query} /> : null}
      {tab === 'tail' ? <Tail pid={pid} /> : null}
    </section>
  );
}

function infoText(info) {
  return (info || []).map((m) => Object.keys(m).sort().map((k) => `${k}=${Array.isArray(m[k]) ? m[k].join(',') : m[k]}`).join(' ')).join('; ');
}

function Nodes({ nodes }) {
  if (!nodes.length) return <p class="muted">No node.</p>;
  return (
    <div class="table-wrap">
      <table class="grid nodes">
        <thead><tr><th>Node</th><th>Status</th><th>Agent</th><th>Files</th><th>Lines read</th><th>Shipped</th><th>Dropped</th><th>Lag</th><th>Reported</th><th>Collects</th><th>Error</th></tr></thead>
        <tbody>{nodes.map((n) => {
          const s = n.stats || {};
          return (
            <tr key={n.id} data-node={n.id}>
              <td><Link href={'/ui/hosts/' + encodeURIComponent(n.id)}>{n.id}</Link></td>
              <td><StateBadge state={nodeState(n.status)} /></td>
              <td class={n.online ? 'online' : 'offline'}>{n.online ? 'online' : 'offline'}</td>
              <td>{num(s.files)}</td>
              <td>{num(s.lines).toLocaleString('en')}</td>
              <td>{num(s.shipped_lines).toLocaleString('en')}</td>
              <td class={num(s.dropped_lines) ? 'bad' : ''}>{num(s.dropped_lines).toLocaleString('en')}</td>
              <td>{fmtBytes(num(s.lag_bytes))}</td>
              <td title={fmtTime(n.updated)}>{fmtAgo(n.updated)}</td>
              <td class="mono small">{infoText(n.info)}</td>
              <td class="msg bad">{n.error || ''}</td>
            </tr>
          );
        })}</tbody>
      </table>
    </div>
  );
}

// toRFC3339 reads a datetime-local value as local time.
const toRFC3339 = (v) => (v ? new Date(v).toISOString() : '');
const PAGE_SIZES = [100, 500, 1000];

// hostsOf reads "a, b c" into a list of agent ids.
const hostsOf = (s) => s.split(/[\s,]+/).filter(Boolean);

function Lines({ lines, testid }) {
  return (
    <div class="table-wrap">
      <table class="grid compact loglines" data-testid={testid}>
        <thead><tr><th>Time</th><th>Host</th><th>Source</th><th>Line</th></tr></thead>
        <tbody>{lines.map((l) => (
          <tr key={l.host + '/' + l.source_id + '/' + l.offset}>
            <td class="nowrap" title={l.time}>{fmtTime(l.time)}</td>
            <td class="nowrap">{l.host}</td>
            <td class="mono small" title={`${l.source} @ ${l.offset}${l.stream !== 'file' ? ' · ' + l.stream : ''}`}>{l.source}</td>
            <td class="line">{l.line}{l.flags && l.flags.length ? <span class="muted"> [{l.flags.join(', ')}]</span> : null}</td>
          </tr>
        ))}</tbody>
      </table>
    </div>
  );
}

// Query reads stored lines: the filters live in the URL (a reload or a
// shared link keeps them), the pages follow the server's cursor; the
// cursors of the pages before are kept for "previous".
function Query({ pid, query }) {
  const f = {
    since: query.get('since') || '', until: query.get('until') || '', host: query.get('host') || '',
    source: query.get('source') || '', grep: query.get('grep') || '', size: Number(query.get('size') || 100),
  };
  const [d, setD] = useState(f);
  // The cursors of the pages so far (the last is the page shown), for
  // these filters: new filters start at the first page.
  const key = JSON.stringify(f);
  const [nav, setNav] = useState({ key, cursors: [''] });
  const cursors = nav.key === key ? nav.cursors : [''];
  const setCursors = (c) => setNav({ key, cursors: c });
  const cursor = cursors[cursors.length - 1];
  const page = usePoll(() => get('/api/logging/query' + qs({
    pid, since: toRFC3339(f.since), until: toRFC3339(f.until), host: hostsOf(f.host), source: f.source, grep: f.grep, limit: f.size, cursor,
  })), [pid, key, cursor]);
  const set = (k) => (e) => setD({ ...d, [k]: e.currentTarget.value });
  const lines = page.data ? page.data.lines || [] : [];
  return (
    <div>
      <form class="filters" role="search" onSubmit={(e) => { e.preventDefault(); setQuery({ tab: 'query', ...d }); }}>
        <label>Since <input name="since" type="datetime-local" step="1" value={d.since} onInput={set('since')} /></label>
        <label>Until <input name="until" type="datetime-local" step="1" value={d.until} onInput={set('until')} /></label>
        <label>Host <input name="host" value={d.host} onInput={set('host')} placeholder="agent ids" /></label>
        <label>Source <input name="source" value={d.source} onInput={set('source')} placeholder="/var/log/*.log" /></label>
        <label>Grep <input name="grep" value={d.grep} onInput={set('grep')} placeholder="RE2 regex" /></label>
        <label>Per page <select name="size" value={d.size} onChange={set('size')}>{PAGE_SIZES.map((n) => <option key={n} value={n}>{n}</option>)}</select></label>
        <button type="submit">Search</button>
      </form>
      <div class="toolbar">
        <span class="pager">
          <button type="button" class="secondary" disabled={cursors.length <= 1} onClick={() => setCursors(cursors.slice(0, -1))} aria-label="Previous page">‹</button>
          <span data-testid="query-page">page {cursors.length}{page.loading ? '' : ` · ${lines.length} line${lines.length === 1 ? '' : 's'}`}</span>
          <button type="button" class="secondary" disabled={!page.data || !page.data.next} onClick={() => setCursors([...cursors, page.data.next])} aria-label="Next page">›</button>
        </span>
        <button type="button" class="secondary" onClick={() => page.reload()}>Refresh</button>
      </div>
      <ErrorBox error={page.error} />
      {page.data && !lines.length ? <p class="muted">No stored line matches.</p> : null}
      {lines.length ? <Lines lines={lines} testid="query-lines" /> : null}
    </div>
  );
}

const MAX_TAIL = 2000; // lines kept on the page

// Tail follows the live tail (SSE read with fetch: the token goes in the
// Authorization header, never in the URL). Pause keeps receiving but holds
// the lines back until resumed; Clear empties the view.
function Tail({ pid }) {
  const [d, setD] = useState({ host: '', source: '', grep: '' });
  const [f, setF] = useState(d);
  const [lines, setLines] = useState([]);
  const [held, setHeld] = useState([]);
  const [paused, setPaused] = useState(false);
  const [status, setStatus] = useState('connecting');
  const [dropped, setDropped] = useState(0);
  const [err, setErr] = useState(null);
  const pausedRef = useRef(false);
  pausedRef.current = paused;

  useEffect(() => {
    const ctl = new AbortController();
    let stop = false;
    let wait = 1000;
    (async () => {
      while (!stop) {
        setStatus('connecting');
        try {
          await events('/api/logging/tail' + qs({ pid, host: hostsOf(f.host), source: f.source, grep: f.grep }), (type, e) => {
            if (type === 'line') {
              const add = (list) => { const next = list.concat([e]); return next.length > MAX_TAIL ? next.slice(-MAX_TAIL) : next; };
              if (pausedRef.current) setHeld(add); else setLines(add);
            } else if (type === 'dropped') {
              setDropped((n) => n + (e.lines || 0));
            }
          }, ctl.signal, () => { setStatus('live'); setErr(null); wait = 1000; });
          if (stop) return;
        } catch (e) {
          if (stop || e.name === 'AbortError') return;
          setErr(e);
          if (e.status && e.status < 500 && e.status !== 429) { setStatus('stopped'); return; }
        }
        // The stream ended (server restart, network): connect again.
        setStatus('reconnecting');
        await new Promise((r) => setTimeout(r, wait));
        wait = Math.min(wait * 2, 15000);
      }
    })();
    return () => { stop = true; ctl.abort(); };
  }, [pid, f.host, f.source, f.grep]);

  const resume = () => { setLines((l) => l.concat(held).slice(-MAX_TAIL)); setHeld([]); setPaused(false); };
  const box = useRef(null);
  useEffect(() => { if (box.current) box.current.scrollTop = box.current.scrollHeight; }, [lines]);
  const set = (k) => (e) => setD({ ...d, [k]: e.currentTarget.value });
  return (
    <div class="tail">
      <form class="filters" role="search" onSubmit={(e) => { e.preventDefault(); setLines([]); setHeld([]); setStatus('connecting'); setF({ ...d }); }}>
        <label>Host <input name="host" value={d.host} onInput={set('host')} placeholder="agent ids" /></label>
        <label>Source <input name="source" value={d.source} onInput={set('source')} placeholder="/var/log/*.log" /></label>
        <label>Grep <input name="grep" value={d.grep} onInput={set('grep')} placeholder="RE2 regex" /></label>
        <button type="submit">Follow</button>
      </form>
      <div class="toolbar">
        <span data-testid="tail-status" class={status === 'live' && !paused ? 'live' : 'muted'} role="status">{paused ? 'paused' : status}</span>
        {paused
          ? <button type="button" onClick={resume}>Resume{held.length ? ` (${held.length} new)` : ''}</button>
          : <button type="button" class="secondary" onClick={() => setPaused(true)}>Pause</button>}
        <button type="button" class="secondary" onClick={() => { setLines([]); setHeld([]); setDropped(0); }}>Clear</button>
        <span class="muted">{lines.length} line{lines.length === 1 ? '' : 's'} shown (the last {MAX_TAIL} are kept)</span>
      </div>
      {dropped ? <p class="note" role="status">{dropped} line{dropped === 1 ? '' : 's'} skipped by the server because this page did not keep up; they are stored (Query reads them).</p> : null}
      <ErrorBox error={err} />
      <pre class="output tail-lines" data-testid="tail-lines" ref={box}>{lines.map((l) => `${l.host} ${l.line}\n`).join('')}</pre>
    </div>
  );
}

// fromProject turns a project's config into the form's fields.
function fromProject(c) {
  return {
    pid: c.pid || '', type: c.type || 'logtail', ids: (c.ids || []).join(', '), dir: c.dir || '', exclude: c.exclude || '',
    batch: c.batch || '', buffer: c.buffer || '', interval: c.interval || '', read_from: c.read_from || '',
    ct_name: c.ct_name || '', ct_tag: c.ct_tag || '', ns: c.ns || '', name: (c.name || []).join(', '), api: c.api || '', token: '',
  };
}

// LogProjectForm creates a project (pid empty) or replaces one.
export function LogProjectForm({ pid }) {
  const me = useMe();
  const editing = !!pid;
  const [f, setF] = useState(editing ? null : fromProject({}));
  const [err, setErr] = useState(null);
  const [busy, setBusy] = useState(false);
  const agents = usePoll(() => get('/api/agents' + qs({ type: 'log-agent', size: 200 })).catch(() => []), []);
  useEffect(() => {
    if (!editing) return;
    get('/api/logging/task_info' + qs({ pid })).then((v) => setF(fromProject(v.config || {})), setErr);
  }, [pid]);
  if (!can(me, 'logging:write')) return <section><h1>Log project</h1><p>This token may not configure log collection.</p></section>;
  if (!f) return <section><h1>Edit {pid}</h1><ErrorBox error={err} />{err ? null : <p class="loading">Loading…</p>}</section>;
  const set = (k) => (e) => setF({ ...f, [k]: e.currentTarget.value });
  const ids = hostsOf(f.ids);
  const addId = (id) => setF({ ...f, ids: [...ids, id].join(', ') });
  const submit = async (e) => {
    e.preventDefault();
    const body = { pid: f.pid, type: f.type };
    for (const k of ['dir', 'exclude', 'read_from', 'ct_name', 'ct_tag', 'ns', 'api', 'token']) if (f[k]) body[k] = f[k];
    for (const k of ['batch', 'buffer', 'interval']) if (f[k] !== '') body[k] = Number(f[k]);
    if (ids.length) body.ids = ids;
    if (f.name.trim()) body.name = hostsOf(f.name);
    setBusy(true);
    setErr(null);
    try {
      await api('/api/logging/config', { method: 'POST', body });
      navigate(projectPath(f.pid));
    } catch (e2) { setErr(e2); setBusy(false); }
  };
  const known = (agents.data || []).map((a) => a.id).filter((id) => !ids.includes(id));
  return (
    <section>
      <h1>{editing ? `Edit ${pid}` : 'New log project'}</h1>
      <form class="run logform" onSubmit={submit}>
        <div class="row wrap">
          <label>Name <input name="pid" value={f.pid} onInput={set('pid')} required readOnly={editing} pattern="[A-Za-z0-9][A-Za-z0-9._\-]{0,63}" /></label>
          <label>Type <select name="type" value={f.type} onChange={set('type')}>{TYPES.map((t) => <option key={t}>{t}</option>)}</select></label>
        </div>
        <label>Log-agents (ids, comma-separated{f.type === 'k8s' ? '; empty: every log-agent' : ''})
          <textarea name="ids" rows="2" value={f.ids} onInput={set('ids')} required={f.type !== 'k8s'} /></label>
        {known.length ? (
          <div class="row wrap small"><span class="muted">Known log-agents:</span>
            {known.slice(0, 30).map((id) => <button type="button" class="link" key={id} onClick={() => addId(id)} aria-label={'Add ' + id}>+ {id}</button>)}
          </div>
        ) : null}
        {f.type === 'docker' ? (
          <div class="row wrap">
            <label>Container names (glob) <input name="ct_name" value={f.ct_name} onInput={set('ct_name')} required /></label>
            <label>Image tag <input name="ct_tag" value={f.ct_tag} onInput={set('ct_tag')} /></label>
          </div>
        ) : null}
        {f.type === 'k8s' ? (
          <div class="row wrap">
            <label>Namespace <input name="ns" value={f.ns} onInput={set('ns')} required /></label>
            <label>App names <input name="name" value={f.name} onInput={set('name')} required placeholder="web, api" /></label>
            <label>API server <input name="api" value={f.api} onInput={set('api')} required placeholder="https://10.0.0.1:6443" /></label>
            <label>Token {editing ? '(enter it again: it is never shown)' : ''}<input name="token" type="password" autocomplete="off" value={f.token} onInput={set('token')} /></label>
          </div>
        ) : null}
        <label>{f.type === 'logtail' ? 'Files (absolute glob)' : 'Files inside (absolute glob; empty: the output)'}
          <input name="dir" value={f.dir} onInput={set('dir')} required={f.type === 'logtail'} placeholder="/var/log/app/*.log" /></label>
        <label>Exclude (RE2 regex: matching records are dropped) <input name="exclude" value={f.exclude} onInput={set('exclude')} /></label>
        <div class="row wrap">
          <label>Batch (lines) <input name="batch" type="number" min="1" value={f.batch} onInput={set('batch')} placeholder="1000" /></label>
          <label>Buffer (bytes) <input name="buffer" type="number" min="256" value={f.buffer} onInput={set('buffer')} placeholder="4096" /></label>
          <label>Interval (s) <input name="interval" type="number" min="1" value={f.interval} onInput={set('interval')} placeholder="30" /></label>
          <label>Read files from <select name="read_from" value={f.read_from} onChange={set('read_from')}>
            <option value="">end (default)</option><option value="beginning">beginning</option><option value="end">end</option>
          </select></label>
        </div>
        <div class="row">
          <button type="submit" disabled={busy}>{editing ? 'Save' : 'Create'}</button>
          <Link href={editing ? projectPath(pid) : '/ui/logs'}>Cancel</Link>
        </div>
        <ErrorBox error={err} />
      </form>
    </section>
  );
}
