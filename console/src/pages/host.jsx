// Host: one agent and the other agents of its host (same host name and
// IP): facts, current usage, the last hour's charts, processes (kill),
// connections, temperatures, the agents' own logs, and links to the
// terminal and the files of the host's exec-agent.
import { lazy, Suspense } from 'preact/compat';
import { useMemo, useState } from 'preact/hooks';
import { api, download, get, qs, request } from '../api.js';
import {
  ErrorBox, Labels, Link, can, fmtAgo, fmtBytes, fmtDuration, fmtPct, fmtTime, labelsText, parseLabels, usePoll, useMe,
} from '../util.jsx';

const UsageCharts = lazy(() => import('../charts.jsx'));

// useHost loads the agent and its siblings on the same host.
export function useHost(id) {
  return usePoll(async () => {
    const agent = await get('/api/agents/' + encodeURIComponent(id));
    let siblings = [agent];
    const key = agent.host_name || agent.ip;
    if (key) {
      const list = await get('/api/agents' + qs({ keyword: key, size: 100 }));
      siblings = list.filter((a) => a.id === agent.id || (a.host_name === agent.host_name && a.ip === agent.ip));
      if (!siblings.some((a) => a.id === agent.id)) siblings.unshift(agent);
    }
    const pick = (type) => (agent.type === type ? agent : siblings.find((a) => a.type === type && a.is_online) || siblings.find((a) => a.type === type));
    return { agent, siblings, metrics: pick('metrics-agent'), exec: pick('exec-agent') };
  }, [id], 10000);
}

const TABS = [
  ['overview', 'Overview'],
  ['processes', 'Processes'],
  ['connections', 'Connections'],
  ['logs', 'Agent logs'],
];

export function Host({ id, tab }) {
  const me = useMe();
  const { data, error, reload } = useHost(id);
  if (!data) return <section><h1>{id}</h1><ErrorBox error={error} />{error ? null : <p class="loading">Loading…</p>}</section>;
  const { agent, siblings, metrics, exec } = data;
  const base = '/ui/hosts/' + encodeURIComponent(id);
  return (
    <section>
      <h1>{agent.host_name || agent.id} <span class={agent.is_online ? 'online' : 'offline'}>{agent.is_online ? 'online' : 'offline'}</span></h1>
      <ErrorBox error={error} />
      <div class="row wrap">
        {exec && can(me, 'exec:run') ? <Link class="button" href={'/ui/hosts/' + encodeURIComponent(exec.id) + '/terminal'}>Terminal</Link> : null}
        {exec && can(me, 'files:read') ? <Link class="button" href={'/ui/hosts/' + encodeURIComponent(exec.id) + '/files'}>Files</Link> : null}
        {exec && can(me, 'tasks:write') ? <Link class="button" href={'/ui/run' + qs({ ids: exec.id })}>Run a command</Link> : null}
      </div>
      <Agents siblings={siblings} current={id} onChanged={reload} />
      <nav class="tabs" aria-label="Host sections">
        {TABS.map(([k, label]) => (
          <Link key={k} href={base + (k === 'overview' ? '' : '?tab=' + k)} aria-current={tab === k ? 'page' : undefined}>{label}</Link>
        ))}
      </nav>
      {tab === 'overview' ? <Overview metrics={metrics} /> : null}
      {tab === 'processes' ? <Processes metrics={metrics} exec={exec} /> : null}
      {tab === 'connections' ? <Connections metrics={metrics} /> : null}
      {tab === 'logs' ? <Logs siblings={siblings} /> : null}
    </section>
  );
}

// Agents lists the host's agents with their labels (editable).
function Agents({ siblings, current, onChanged }) {
  const me = useMe();
  const [edit, setEdit] = useState(null);
  return (
    <div class="table-wrap">
      <table class="grid">
        <caption class="sr">Agents on this host</caption>
        <thead><tr><th>Agent</th><th>Type</th><th>Version</th><th>IP</th><th>OS</th><th>Labels</th><th>State</th><th>Last seen</th></tr></thead>
        <tbody>
          {siblings.map((a) => (
            <tr key={a.id} class={a.id === current ? 'sel' : ''}>
              <td>{a.id === current ? <b>{a.id}</b> : <Link href={'/ui/hosts/' + encodeURIComponent(a.id)}>{a.id}</Link>}</td>
              <td>{a.type}</td>
              <td>{a.version}</td>
              <td>{a.ip}</td>
              <td>{[a.os, a.platform, a.arch].filter(Boolean).join(' / ')}</td>
              <td>
                {edit === a.id ? (
                  <LabelForm agent={a} onDone={() => { setEdit(null); onChanged(); }} />
                ) : (
                  <span><Labels labels={a.labels} /> {can(me, 'agents:write') ? (
                    <button type="button" class="link" onClick={() => setEdit(a.id)} aria-label={'Edit the labels of ' + a.id}>edit</button>
                  ) : null}</span>
                )}
              </td>
              <td>{a.is_online ? <span class="online">online</span> : <span class="offline">offline</span>}</td>
              <td title={a.last_seen}>{fmtAgo(a.last_seen)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function LabelForm({ agent, onDone }) {
  const [text, setText] = useState(labelsText(agent.labels));
  const [err, setErr] = useState(null);
  const save = async (e) => {
    e.preventDefault();
    try {
      await request('/api/agents/' + encodeURIComponent(agent.id) + '/labels', { method: 'PUT', body: { labels: parseLabels(text) } });
      onDone();
    } catch (e2) { setErr(e2); }
  };
  return (
    <form class="inline" onSubmit={save}>
      <input aria-label={'Labels of ' + agent.id} value={text} onInput={(e) => setText(e.currentTarget.value)} placeholder="k=v, k2=v2" />
      <button type="submit">Save</button>
      <button type="button" class="secondary" onClick={onDone}>Cancel</button>
      <ErrorBox error={err} />
    </form>
  );
}

function NoMetrics() {
  return <p class="muted">No metrics-agent runs on this host: facts, usage and processes come from one.</p>;
}

const Overview = ({ metrics }) => (metrics ? <OverviewOf metrics={metrics} /> : <NoMetrics />);

function OverviewOf({ metrics }) {
  const mid = encodeURIComponent(metrics.id);
  const facts = usePoll(() => get(`/api/metrics/${mid}/static?cached=1`), [mid], 60000);
  const usage = usePoll(() => get(`/api/metrics/${mid}/dynamic/usage?cached=1`), [mid], 15000);
  const hist = usePoll(() => get(`/api/metrics/${mid}/history`), [mid], 15000);
  const temps = usePoll(() => get(`/api/metrics/${mid}/dynamic/temps?cached=1`), [mid], 60000);
  return (
    <div>
      <h2>Usage, last hour</h2>
      <ErrorBox error={hist.error} />
      <Suspense fallback={<p class="loading">Loading charts…</p>}>
        {hist.data ? <UsageCharts h={hist.data} /> : null}
      </Suspense>
      <div class="cols">
        <div>
          <h2>Now</h2>
          {usage.error && usage.error.status === 404 ? <p class="muted">No usage report yet.</p> : <ErrorBox error={usage.error} />}
          {usage.data ? <UsageNow u={usage.data} total={facts.data && facts.data.memory ? facts.data.memory.physical : 0} /> : null}
          <h2>Temperatures</h2>
          {temps.error && temps.error.status === 404 ? <p class="muted">No sensor report.</p> : <ErrorBox error={temps.error} />}
          {temps.data ? (temps.data.length ? (
            <table class="grid compact"><thead><tr><th>Sensor</th><th>°C</th></tr></thead>
              <tbody>{temps.data.map((t) => <tr key={t.name}><td>{t.name}</td><td>{t.temp.toFixed(1)}</td></tr>)}</tbody></table>
          ) : <p class="muted">No sensors.</p>) : null}
        </div>
        <div>
          <h2>Facts</h2>
          {facts.error && facts.error.status === 404 ? <p class="muted">No facts reported yet.</p> : <ErrorBox error={facts.error} />}
          {facts.data ? <Facts s={facts.data} /> : null}
        </div>
      </div>
    </div>
  );
}

function UsageNow({ u, total }) {
  const mem = u.memory || {};
  return (
    <div>
      <dl class="facts">
        <dt>CPU</dt><dd>{fmtPct(u.cpu.usage)} · load {u.cpu.load1} / {u.cpu.load5} / {u.cpu.load15}</dd>
        <dt>Memory</dt><dd>{fmtPct(mem.usage)} · {fmtBytes(mem.used)} used{total ? ` of ${fmtBytes(total)}` : ''} · {fmtBytes(mem.available)} available</dd>
        <dt>Swap</dt><dd>{fmtBytes(mem.swap_used)} used · {fmtBytes(mem.swap_free)} free</dd>
      </dl>
      <table class="grid compact">
        <thead><tr><th>Mount</th><th>Used</th><th>Free</th><th>Read/s</th><th>Write/s</th></tr></thead>
        <tbody>{(u.partitions || []).map((p) => (
          <tr key={p.name}><td>{p.name}</td><td>{fmtPct(p.usage)}</td><td>{fmtBytes(p.free)}</td><td>{fmtBytes(p.read_per_second)}</td><td>{fmtBytes(p.write_per_second)}</td></tr>
        ))}</tbody>
      </table>
      <table class="grid compact">
        <thead><tr><th>Interface</th><th>Received</th><th>Sent</th></tr></thead>
        <tbody>{(u.interface || []).map((n) => (
          <tr key={n.name}><td>{n.name}</td><td>{fmtBytes(n.bytes_recv)}</td><td>{fmtBytes(n.bytes_sent)}</td></tr>
        ))}</tbody>
      </table>
    </div>
  );
}

function Facts({ s }) {
  const cpu = s.cpu || {};
  const model = cpu.cores && cpu.cores[0] ? cpu.cores[0].model : '';
  return (
    <dl class="facts">
      <dt>Host</dt><dd>{s.host.name} · up {fmtDuration(s.host.uptime)}</dd>
      <dt>OS</dt><dd>{s.os.name} {s.os.platform_name} {s.os.platform_version} · booted {fmtTime(s.os.startup)}</dd>
      <dt>Kernel</dt><dd>{s.kernel.version} ({s.kernel.arch})</dd>
      <dt>CPU</dt><dd>{cpu.logical} logical / {cpu.physical} physical{model ? ' · ' + model : ''}</dd>
      <dt>Memory</dt><dd>{fmtBytes(s.memory.physical)} · swap {fmtBytes(s.memory.swap)}</dd>
      <dt>Disks</dt><dd>{(s.disks || []).map((d) => `${d.model || '?'} ${fmtBytes(d.total)}`).join(', ') || '—'}</dd>
      <dt>File systems</dt><dd>{(s.partitions || []).map((p) => `${p.mount} (${p.fstype}, ${fmtBytes(p.total)})`).join(', ') || '—'}</dd>
      <dt>Network</dt><dd>{(s.interface || []).map((i) => `${i.name} ${(i.addrs || []).join(' ')}`).join(', ') || '—'} · gateway {s.gateway || '—'}</dd>
      <dt>DNS</dt><dd>{(s.nameservers || []).join(', ') || '—'}</dd>
      <dt>Users</dt><dd>{(s.user || []).length}</dd>
    </dl>
  );
}

const PROC_COLS = [
  ['id', 'PID', (p) => p.id],
  ['user', 'User', (p) => p.user],
  ['cpu_usage', 'CPU %', (p) => p.cpu_usage],
  ['memory_usage', 'Mem %', (p) => p.memory_usage],
  ['rss', 'RSS', (p) => p.rss],
  ['conns', 'Conns', (p) => p.conns],
  ['cmd', 'Command', (p) => (p.cmd || []).join(' ')],
];

const Processes = ({ metrics, exec }) => (metrics ? <ProcessesOf metrics={metrics} exec={exec} /> : <NoMetrics />);

function ProcessesOf({ metrics, exec }) {
  const me = useMe();
  const [fresh, setFresh] = useState(0);
  const [sort, setSort] = useState('-cpu_usage');
  const [filter, setFilter] = useState('');
  const [msg, setMsg] = useState(null);
  const mid = encodeURIComponent(metrics.id);
  const procs = usePoll(() => get(`/api/metrics/${mid}/dynamic/process${fresh ? '' : '?cached=1'}`), [mid, fresh], 0);
  const rows = useMemo(() => {
    const col = PROC_COLS.find((c) => c[0] === sort.replace(/^-/, '')) || PROC_COLS[2];
    const dir = sort.startsWith('-') ? -1 : 1;
    const f = filter.toLowerCase();
    return (procs.data || [])
      .filter((p) => !f || (p.cmd || []).join(' ').toLowerCase().includes(f) || String(p.id) === f || (p.user || '').toLowerCase() === f)
      .sort((a, b) => { const x = col[2](a), y = col[2](b); return (x < y ? -1 : x > y ? 1 : 0) * dir; });
  }, [procs.data, sort, filter]);
  const canKill = exec && exec.is_online && can(me, 'exec:run');
  // A host process is killed by a command on the host's exec-agent (the
  // kill route reaches only the agent's own commands); it is audited as a run.
  const kill = async (p, signal) => {
    if (!confirm(`Send ${signal} to process ${p.id} (${(p.cmd || []).join(' ').slice(0, 80)}) on ${exec.host_name || exec.id}?`)) return;
    const win = (exec.os || '').toLowerCase() === 'windows';
    const body = win ? { cmd: 'taskkill', args: ['/PID', String(p.id), '/F'], timeout: 30 }
      : { cmd: 'kill', args: ['-' + signal, String(p.id)], timeout: 30 };
    try {
      const r = (await api(`/api/exec/${encodeURIComponent(exec.id)}/run`, { method: 'POST', body })).payload;
      const out = r.result && r.result.data ? atob(r.result.data) : '';
      setMsg({ ok: r.result && r.result.code === 0, text: `kill ${p.id}: exit ${r.result ? r.result.code : '?'} ${out}` });
      setFresh((n) => n + 1);
    } catch (e) {
      setMsg({ ok: false, text: `kill ${p.id}: ${e.message}` });
    }
  };
  return (
    <div>
      <div class="toolbar">
        <label>Filter <input type="search" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} placeholder="command, PID or user" /></label>
        <button type="button" class="secondary" onClick={() => setFresh((n) => n + 1)}>Refresh from the host</button>
        <span class="muted">{procs.data ? `${rows.length} of ${procs.data.length} processes` : ''}</span>
      </div>
      {msg ? <div class={msg.ok ? 'note' : 'error'} role="status">{msg.text}</div> : null}
      {procs.error && procs.error.status === 404 ? <p class="muted">No process list reported yet: refresh from the host.</p> : <ErrorBox error={procs.error} />}
      <div class="table-wrap">
        <table class="grid compact procs">
          <thead><tr>
            {PROC_COLS.map(([k, label]) => {
              const dir = sort === k ? 'ascending' : sort === '-' + k ? 'descending' : 'none';
              return <th key={k} aria-sort={dir}><button type="button" class="sort" onClick={() => setSort(sort === '-' + k ? k : '-' + k)}>{label}{dir === 'ascending' ? ' ▲' : dir === 'descending' ? ' ▼' : ''}</button></th>;
            })}
            {canKill ? <th>Kill</th> : null}
          </tr></thead>
          <tbody>{rows.slice(0, 500).map((p) => (
            <tr key={p.id}>
              <td>{p.id}</td><td>{p.user}</td><td>{p.cpu_usage.toFixed(1)}</td><td>{p.memory_usage.toFixed(1)}</td>
              <td>{fmtBytes(p.rss)}</td><td>{p.conns}</td><td class="cmd">{(p.cmd || []).join(' ')}</td>
              {canKill ? <td class="nowrap">
                <button type="button" class="link" onClick={() => kill(p, 'TERM')} aria-label={`Terminate process ${p.id}`}>TERM</button>{' '}
                <button type="button" class="link danger" onClick={() => kill(p, 'KILL')} aria-label={`Kill process ${p.id}`}>KILL</button>
              </td> : null}
            </tr>
          ))}</tbody>
        </table>
      </div>
    </div>
  );
}

const Connections = ({ metrics }) => (metrics ? <ConnectionsOf metrics={metrics} /> : <NoMetrics />);

function ConnectionsOf({ metrics }) {
  const [kind, setKind] = useState('all');
  const mid = encodeURIComponent(metrics.id);
  const conns = usePoll(() => get(`/api/metrics/${mid}/dynamic/connections?cached=1&kinds=${kind}`), [mid, kind], 60000);
  return (
    <div>
      <div class="toolbar">
        <label>Kind <select value={kind} onChange={(e) => setKind(e.currentTarget.value)}>
          {['all', 'tcp', 'tcp4', 'tcp6', 'udp', 'udp4', 'udp6', 'unix'].map((k) => <option key={k}>{k}</option>)}
        </select></label>
        <span class="muted">{conns.data ? `${conns.data.length} sockets` : ''}</span>
      </div>
      {conns.error && conns.error.status === 404 ? <p class="muted">No connections reported yet.</p> : <ErrorBox error={conns.error} />}
      <div class="table-wrap">
        <table class="grid compact">
          <thead><tr><th>Type</th><th>Local</th><th>Remote</th><th>State</th><th>PID</th></tr></thead>
          <tbody>{(conns.data || []).slice(0, 1000).map((c, i) => (
            <tr key={i}><td>{c.type}</td><td>{c.local}</td><td>{c.remote || ''}</td><td>{c.status || ''}</td><td>{c.pid}</td></tr>
          ))}</tbody>
        </table>
      </div>
    </div>
  );
}

// Logs: the agents' own log files (GET /api/agents/{id}/logs), downloaded
// as a zip.
function Logs({ siblings }) {
  const me = useMe();
  const online = siblings.filter((a) => a.is_online);
  const [which, setWhich] = useState(online[0] ? online[0].id : '');
  const [picked, setPicked] = useState(() => new Set());
  const [prog, setProg] = useState(null);
  const [err, setErr] = useState(null);
  const id = encodeURIComponent(which);
  const files = usePoll(() => (which ? get(`/api/agents/${id}/logs`) : Promise.resolve([])), [which], 0);
  if (!can(me, 'logs:read')) return <p class="muted">This token may not read agents' logs.</p>;
  if (!online.length) return <p class="muted">No agent of this host is online: logs are read from the agent.</p>;
  const get1 = async () => {
    setErr(null);
    try {
      await download(`/api/agents/${id}/log/download` + qs({ files: [...picked] }), `${which}-logs.zip`, (n) => setProg(n));
    } catch (e) { setErr(e); }
    setProg(null);
  };
  return (
    <div>
      <div class="toolbar">
        <label>Agent <select value={which} onChange={(e) => { setWhich(e.currentTarget.value); setPicked(new Set()); }}>
          {online.map((a) => <option key={a.id} value={a.id}>{a.id} ({a.type})</option>)}
        </select></label>
        <button type="button" disabled={!picked.size || prog !== null} onClick={get1}>Download {picked.size || ''} as zip</button>
        {prog !== null ? <span class="muted">{fmtBytes(prog)}…</span> : null}
      </div>
      <ErrorBox error={files.error || err} />
      <table class="grid compact">
        <thead><tr><th /><th>File</th><th>Size</th><th>Modified</th></tr></thead>
        <tbody>{(files.data || []).map((f) => (
          <tr key={f.name}>
            <td><input type="checkbox" aria-label={'Pick ' + f.name} checked={picked.has(f.name)} onChange={() => {
              const s = new Set(picked); if (s.has(f.name)) s.delete(f.name); else s.add(f.name); setPicked(s);
            }} /></td>
            <td>{f.name}</td><td>{fmtBytes(f.size)}</td><td>{fmtTime(f.mod_time)}</td>
          </tr>
        ))}</tbody>
      </table>
    </div>
  );
}
