// Tasks and layouts: the list (GET /api/tasks), a fleet task's per-host
// states and live output (GET /api/tasks/{id} then its SSE events), cancel,
// re-run on the failed hosts; layouts: start one from an uploaded archive,
// follow its steps, cancel it.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, events, get, qs, request, upload } from '../api.js';
import { Pager } from './fleet.jsx';
import { ActionLog, installActions } from './install.jsx';
import {
  ErrorBox, Link, Progress, StateBadge, can, fmtAgo, fmtBytes, fmtTime, navigate, setQuery, usePoll, useMe,
} from '../util.jsx';

const PAGE = 50;
const FINISHED = ['ok', 'failed', 'timed_out', 'skipped', 'lost'];
const FAILED = ['failed', 'timed_out', 'lost'];

// rank orders a host's states: they only move forward, so a listing that
// is older than an event never takes a state back.
const rank = (st) => (FINISHED.includes(st) ? 2 : st === 'running' ? 1 : 0);
const newer = (a, b) => (!a || rank(b.state) >= rank(a.state) ? b : a);

export function Tasks({ query }) {
  const me = useMe();
  const state = query.get('state') || '';
  const page = Number(query.get('page') || 1);
  const list = usePoll(() => api('/api/tasks' + qs({ state, page, size: PAGE })), [state, page], 3000);
  const tasks = list.data ? list.data.payload || [] : [];
  const total = list.data ? list.data.total : 0;
  return (
    <section>
      <h1>Tasks and layouts</h1>
      <div class="toolbar">
        <label>State <select value={state} onChange={(e) => setQuery({ state: e.currentTarget.value })}>
          <option value="">any</option>
          {['pending', 'running', 'done', 'failed', 'cancelled'].map((s) => <option key={s}>{s}</option>)}
        </select></label>
        {can(me, 'tasks:write') ? <Link class="button" href="/ui/run">New fleet task…</Link> : null}
        {can(me, 'tasks:write') ? <Link class="button" href="/ui/layouts/new">New layout…</Link> : null}
        <span class="spacer" />
        <Pager page={page} pages={Math.max(1, Math.ceil(total / PAGE))} onPage={(p) => setQuery({ state, page: p })} />
      </div>
      <ErrorBox error={list.error} />
      <div class="table-wrap">
        <table class="grid">
          <thead><tr><th>Task</th><th>Kind</th><th>State</th><th>Progress</th><th>By</th><th>Created</th><th>Message</th></tr></thead>
          <tbody>{tasks.map((t) => {
            const s = t.summary || {};
            const done = FINISHED.reduce((n, k) => n + (s[k] || 0), 0);
            const href = t.kind === 'fleet' || t.kind === 'upgrade' ? '/ui/tasks/' + encodeURIComponent(t.id) : t.kind === 'layout' ? '/ui/layouts/' + encodeURIComponent(t.id) : '';
            return (
              <tr key={t.id}>
                <td>{href ? <Link href={href}>{t.id}</Link> : t.id}</td>
                <td>{t.kind}</td>
                <td><StateBadge state={t.state} /></td>
                <td>{s.total ? <Progress value={done} max={s.total} label={`${done}/${s.total}${s.failed || s.timed_out || s.lost ? ` · ${(s.failed || 0) + (s.timed_out || 0) + (s.lost || 0)} failed` : ''}`} /> : ''}</td>
                <td>{t.created_by}</td>
                <td title={fmtTime(t.created_at)}>{fmtAgo(t.created_at)}</td>
                <td class="msg">{t.msg || ''}</td>
              </tr>
            );
          })}</tbody>
        </table>
      </div>
    </section>
  );
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const MAX_SHOWN = 256 << 10; // characters of output kept per host on the page

// appendOutput merges an output event into a host's buffer by byte offset:
// repeats are skipped, a gap is marked.
export function appendOutput(buf, offset, data) {
  const bytes = enc.encode(data);
  let text = buf.text, n = buf.bytes;
  if (offset + bytes.length <= n) return buf;
  if (offset > n) text += `\n[... ${offset - n} bytes not shown ...]\n`;
  const skip = Math.max(0, n - offset);
  text += skip ? dec.decode(bytes.subarray(skip)) : data;
  if (text.length > MAX_SHOWN) text = '[... earlier output trimmed on this page ...]\n' + text.slice(-MAX_SHOWN);
  return { text, bytes: offset + bytes.length };
}

function initialOutput(a) {
  const gap = a.dropped ? `\n[... ${a.dropped} bytes ...]\n` : '';
  return { text: (a.output_head || '') + gap + (a.output_tail || ''), bytes: a.output_bytes || 0 };
}

export function TaskDetail({ id }) {
  const me = useMe();
  const [view, setView] = useState(null);
  const [agents, setAgents] = useState({}); // agent -> result
  const [out, setOut] = useState({}); // agent -> { text, bytes }
  const [open, setOpen] = useState({});
  const [err, setErr] = useState(null);
  const [live, setLive] = useState(false);
  const [gen, setGen] = useState(0);
  const eid = encodeURIComponent(id);

  const load = async () => {
    const r = await api(`/api/tasks/${eid}`);
    const v = r.payload;
    setView(v);
    const as = {}, os = {};
    for (const a of v.agents || []) { as[a.agent] = a; os[a.agent] = initialOutput(a); }
    setAgents((prev) => {
      const next = {};
      // The stored action log of an install only grows: the listing's is taken.
      for (const [k, a] of Object.entries(as)) next[k] = { ...newer(prev[k], a), actions: a.actions };
      return next;
    });
    setOut((prev) => {
      const next = { ...os };
      for (const k of Object.keys(prev)) if (prev[k].bytes > (next[k] ? next[k].bytes : 0)) next[k] = prev[k];
      return next;
    });
    return v;
  };

  useEffect(() => {
    const ctl = new AbortController();
    let stop = false;
    (async () => {
      try {
        const v = await load();
        if (['done', 'failed', 'cancelled'].includes(v.state)) return;
        setLive(true);
        await events(`/api/tasks/${eid}/events`, (type, e) => {
          if (type === 'state') {
            setAgents((m) => {
              const cur = m[e.agent] || { agent: e.agent };
              return { ...m, [e.agent]: newer(cur, { ...cur, state: e.state, exit_code: e.exit_code ?? cur.exit_code, msg: e.msg }) };
            });
          } else if (type === 'output') {
            setOut((m) => ({ ...m, [e.agent]: appendOutput(m[e.agent] || { text: '', bytes: 0 }, e.offset || 0, e.data || '') }));
            // Output means the command runs, whatever state event was missed.
            setAgents((m) => (m[e.agent] && rank(m[e.agent].state) === 0 ? { ...m, [e.agent]: { ...m[e.agent], state: 'running' } } : m));
          } else if (type === 'done') {
            setView((v2) => (v2 ? { ...v2, state: e.state, msg: e.msg } : v2));
          }
          // "dropped": the server gave up on a slow reader and ends the
          // stream; the reload below catches up and follows again.
        }, ctl.signal, () => { load().catch(() => {}); }); // what changed before the subscription
        if (stop) return;
        setLive(false);
        const v2 = await load();
        if (!stop && !['done', 'failed', 'cancelled'].includes(v2.state)) setGen((g) => g + 1);
      } catch (e) {
        if (!stop && e.name !== 'AbortError') { setErr(e); setLive(false); load().catch(() => {}); }
      }
    })();
    return () => { stop = true; ctl.abort(); };
  }, [id, gen]);

  if (!view) return <section><h1>Task {id}</h1><ErrorBox error={err} />{err ? null : <p class="loading">Loading…</p>}</section>;
  const list = Object.values(agents).sort((a, b) => a.agent.localeCompare(b.agent));
  const count = (st) => list.filter((a) => st.includes(a.state)).length;
  const done = count(FINISHED);
  const failed = list.filter((a) => FAILED.includes(a.state)).map((a) => a.agent);
  const running = !['done', 'failed', 'cancelled'].includes(view.state);
  const req = view.request || {};
  const inst = req.install;
  const up = view.upgrade;
  const command = !inst && !up;

  const cancel = async () => {
    const what = inst ? 'Installs already started run to their end' : up ? 'Agents that already swapped their binary are decided by their own watchdog' : 'Running commands are killed';
    if (!confirm(`Cancel this task? ${what}; hosts not started are skipped.`)) return;
    try { await request(`/api/tasks/${eid}`, { method: 'DELETE' }); await load(); } catch (e) { setErr(e); }
  };
  const rerun = async () => {
    const body = { ...req, selector: { ids: failed } };
    try {
      const r = (await api('/api/tasks', { method: 'POST', body })).payload;
      navigate('/ui/tasks/' + encodeURIComponent(r.id));
    } catch (e) { setErr(e); }
  };

  return (
    <section>
      <h1>{inst ? 'Install' : up ? 'Upgrade' : 'Task'} {id} <StateBadge state={view.state} /></h1>
      <div class="toolbar">
        <Link href="/ui/tasks">← tasks</Link>
        {running && can(me, 'tasks:write') ? <button type="button" class="danger" onClick={cancel}>Cancel task</button> : null}
        {command && !running && failed.length && can(me, 'tasks:write') ? <button type="button" onClick={rerun}>Re-run on the {failed.length} failed host{failed.length > 1 ? 's' : ''}</button> : null}
        <button type="button" class="secondary" onClick={() => setGen((g) => g + 1)}>Refresh</button>
        {live ? <span class="live" role="status">live</span> : null}
      </div>
      <ErrorBox error={err} />
      <dl class="facts">
        {inst ? <InstallFacts inst={inst} /> : up ? <UpgradeFacts up={up} /> : [
          <dt key="c">Command</dt>,
          <dd key="cd"><code>{req.script ? `${req.type || 'sh'}: ${req.script}` : [req.cmd, ...(req.args || [])].join(' ')}</code></dd>,
        ]}
        <dt>Selector</dt><dd><code>{JSON.stringify((up || req).selector || {})}</code></dd>
        <dt>Rollout</dt><dd>{rollout(up || req)}{command ? ` · timeout ${req.timeout || 60} s` : ''}</dd>
        <dt>By</dt><dd>{view.created_by} · {fmtTime(view.created_at)}{view.finished_at ? ` · finished ${fmtTime(view.finished_at)}` : ''}</dd>
        {view.msg ? [<dt key="m">Message</dt>, <dd key="md">{view.msg}</dd>] : null}
      </dl>
      <div data-testid="summary" class="summary">
        <Progress value={done} max={list.length} label={`${done} of ${list.length} finished`} />
        <span>ok {count(['ok'])} · failed {count(['failed'])} · timed out {count(['timed_out'])} · lost {count(['lost'])} · skipped {count(['skipped'])} · running {count(['running'])} · pending {count(['pending'])}</span>
      </div>
      <ul class="hosts">
        {list.map((a) => {
          const o = out[a.agent] || { text: '', bytes: 0 };
          const shown = open[a.agent] ?? list.length <= 10;
          return (
            <li key={a.agent} class={'host state-' + a.state} data-agent={a.agent}>
              <div class="row">
                <button type="button" class="link" aria-expanded={shown} onClick={() => setOpen({ ...open, [a.agent]: !shown })}>{shown ? '▾' : '▸'} {a.agent}</button>
                <StateBadge state={a.state} />
                {command && FINISHED.includes(a.state) && a.state !== 'skipped' && a.state !== 'lost' ? <span>exit {a.exit_code}</span> : null}
                {a.msg ? <span class="muted" data-testid="host-msg">{a.msg}</span> : null}
                {command ? <span class="muted">{fmtBytes(o.bytes)}</span> : null}
              </div>
              {shown && command ? <pre class="output" data-testid="output">{o.text}</pre> : null}
              {shown && inst ? <ActionLog actions={installActions(a.actions, o.text)} /> : null}
            </li>
          );
        })}
      </ul>
    </section>
  );
}

const rollout = (r) => `concurrency ${r.concurrency || 'all'} · max errors ${r.max_errors ?? 'no limit'} · canary ${r.canary || 0}`;

// InstallFacts describes an install task's request (it holds no password).
function InstallFacts({ inst }) {
  const how = [
    inst.dir ? `into ${inst.dir}` : '',
    `timeout ${inst.timeout || 300} s`,
    inst.auth ? `with ${inst.auth}${inst.user ? ' as ' + inst.user : ''}` : '',
    inst.deps ? 'with dependencies' : '',
  ].filter(Boolean).join(' · ');
  return (
    <>
      <dt>Install</dt>
      <dd><code>{inst.uri ? `${inst.uri} (repository)` : inst.url}</code>{inst.kind ? ` as ${inst.kind}` : ''}{inst.sha256 ? <span class="muted"> sha256 {inst.sha256}</span> : null}</dd>
      <dt>How</dt><dd>{how}</dd>
    </>
  );
}

// UpgradeFacts describes an upgrade task's request.
function UpgradeFacts({ up }) {
  return (
    <>
      <dt>Upgrade</dt>
      <dd>{up.agent_type} to <code>{up.package ? up.package : 'version ' + up.version}</code>{up.signature || up.signatures ? ' (signature given)' : ''}</dd>
      <dt>Watchdog</dt><dd>deadline {up.deadline || 120} s · stay {up.stay || 10} s</dd>
    </>
  );
}

export function LayoutDetail({ id }) {
  const me = useMe();
  const eid = encodeURIComponent(id);
  const [err, setErr] = useState(null);
  const l = usePoll(() => get(`/api/layout/${eid}`), [eid], 2000);
  const v = l.data;
  if (!v) return <section><h1>Layout {id}</h1><ErrorBox error={l.error} /></section>;
  const cancel = async () => {
    if (!confirm('Cancel this layout?')) return;
    try { await request(`/api/layout/${eid}`, { method: 'DELETE' }); l.reload(); } catch (e) { setErr(e); }
  };
  return (
    <section>
      <h1>Layout {v.name || id} <StateBadge state={v.state} /></h1>
      <div class="toolbar">
        <Link href="/ui/tasks">← tasks</Link>
        {!v.done && can(me, 'tasks:write') ? <button type="button" class="danger" onClick={cancel}>Cancel layout</button> : null}
      </div>
      <ErrorBox error={err || l.error} />
      <Progress value={v.finished_count} max={v.total_count} label={`${v.finished_count} of ${v.total_count} hosts finished · mode ${v.mode}`} />
      {v.msg ? <p>{v.msg}</p> : null}
      <ul class="hosts">
        {(v.nodes || []).map((n) => (
          <li key={n.id} class="host">
            <div class="row"><b>{n.id}</b> <StateBadge state={n.state} /> {n.msg ? <span class="muted">{n.msg}</span> : null}</div>
            <table class="grid compact">
              <thead><tr><th>Step</th><th>State</th><th>Exit</th><th>Output / message</th></tr></thead>
              <tbody>{(n.steps || []).map((s, i) => (
                <tr key={i}><td>{s.name}</td><td><StateBadge state={s.state} /></td><td>{s.skipped ? '' : s.code}</td>
                  <td><pre class="output small">{s.output || s.msg || ''}</pre></td></tr>
              ))}</tbody>
            </table>
          </li>
        ))}
      </ul>
    </section>
  );
}

export function LayoutNew() {
  const me = useMe();
  const [f, setF] = useState({ ids: '', mode: 'sequence', cont: false, concurrency: '', maxErrors: '', user: '' });
  const [prog, setProg] = useState(null);
  const [err, setErr] = useState(null);
  const file = useRef(null);
  if (!can(me, 'tasks:write')) return <section><h1>New layout</h1><p>This token may not start layouts.</p></section>;
  const set = (k) => (e) => setF({ ...f, [k]: e.currentTarget.type === 'checkbox' ? e.currentTarget.checked : e.currentTarget.value });
  const submit = async (e) => {
    e.preventDefault();
    const tar = file.current.files[0];
    if (!tar) return;
    const form = new FormData();
    form.append('ids', f.ids.split(/[\s,]+/).filter(Boolean).join(','));
    form.append('mode', f.mode);
    form.append('continue', String(f.cont));
    if (f.concurrency) form.append('concurrency', f.concurrency);
    if (f.maxErrors) form.append('max_errors', f.maxErrors);
    if (f.user) form.append('user', f.user);
    form.append('file', tar, tar.name);
    setErr(null);
    setProg({ done: 0, total: tar.size });
    try {
      const id = await upload('/api/layout/run', form, (done, total) => setProg({ done, total: total || tar.size }));
      navigate('/ui/layouts/' + encodeURIComponent(id));
    } catch (e2) { setErr(e2); setProg(null); }
  };
  return (
    <section>
      <h1>New layout</h1>
      <p class="muted">A layout is a tar or tar.gz with <code>main.yaml</code> (or <code>main.json</code>) and the files its steps push.</p>
      <form class="run" onSubmit={submit}>
        <label>Exec-agent ids (one per line or comma-separated)<textarea rows="3" value={f.ids} onInput={set('ids')} required /></label>
        <div class="row wrap">
          <label>Mode <select value={f.mode} onChange={set('mode')}><option>sequence</option><option>parallel</option><option>evenodd</option></select></label>
          <label class="radio"><input type="checkbox" checked={f.cont} onChange={set('cont')} /> continue after a failed host</label>
          <label>Concurrency <input size="5" value={f.concurrency} onInput={set('concurrency')} /></label>
          <label>Max errors <input size="5" value={f.maxErrors} onInput={set('maxErrors')} /></label>
          <label>User <input size="8" value={f.user} onInput={set('user')} /></label>
        </div>
        <label>Archive <input type="file" ref={file} accept=".tar,.tgz,.gz,application/x-tar,application/gzip" required /></label>
        <button type="submit" disabled={!!prog}>Start</button>
        {prog ? <Progress value={prog.done} max={prog.total} label={`Uploading ${fmtBytes(prog.done)} of ${fmtBytes(prog.total)}`} /> : null}
        <ErrorBox error={err} />
      </form>
    </section>
  );
}
