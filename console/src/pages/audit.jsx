// Audit log: who did what, when, from where (GET /api/audit), filtered by
// actor, action, target and time, newest first.
import { useState } from 'preact/hooks';
import { api, qs } from '../api.js';
import { Pager } from './fleet.jsx';
import { ErrorBox, can, fmtTime, setQuery, usePoll, useMe } from '../util.jsx';

const PAGE = 50;

// toRFC3339 reads a datetime-local value as local time.
const toRFC3339 = (v) => (v ? new Date(v).toISOString() : '');

export function Audit({ query }) {
  const me = useMe();
  const f = {
    actor: query.get('actor') || '', action: query.get('action') || '', target: query.get('target') || '',
    since: query.get('since') || '', until: query.get('until') || '', page: Number(query.get('page') || 1),
  };
  const [d, setD] = useState(f);
  const [open, setOpen] = useState(null);
  const list = usePoll(() => api('/api/audit' + qs({
    actor: f.actor, action: f.action, target: f.target, since: toRFC3339(f.since), until: toRFC3339(f.until), page: f.page, size: PAGE,
  })), [f.actor, f.action, f.target, f.since, f.until, f.page], 10000);
  if (!can(me, 'audit:read')) return <section><h1>Audit log</h1><p>This token may not read the audit log.</p></section>;
  const rows = list.data ? list.data.payload || [] : [];
  const total = list.data ? list.data.total : 0;
  const set = (k) => (e) => setD({ ...d, [k]: e.currentTarget.value });
  return (
    <section>
      <h1>Audit log</h1>
      <form class="filters" role="search" onSubmit={(e) => { e.preventDefault(); setQuery({ ...d, page: '' }); }}>
        <label>Actor <input name="actor" value={d.actor} onInput={set('actor')} placeholder="token name" /></label>
        <label>Action <input name="action" value={d.action} onInput={set('action')} placeholder="POST /api/tasks" /></label>
        <label>Target <input name="target" value={d.target} onInput={set('target')} placeholder="agent or task id" /></label>
        <label>Since <input name="since" type="datetime-local" value={d.since} onInput={set('since')} /></label>
        <label>Until <input name="until" type="datetime-local" value={d.until} onInput={set('until')} /></label>
        <button type="submit">Filter</button>
      </form>
      <div class="toolbar">
        <span aria-live="polite">{list.data ? `${total.toLocaleString('en')} entries` : 'loading…'}</span>
        <span class="spacer" />
        <Pager page={f.page} pages={Math.max(1, Math.ceil(total / PAGE))} onPage={(p) => setQuery({ ...f, page: p })} />
      </div>
      <ErrorBox error={list.error} />
      <div class="table-wrap">
        <table class="grid compact">
          <thead><tr><th>Time</th><th>Actor</th><th>Action</th><th>Target</th><th>From</th><th>Result</th><th>Detail</th></tr></thead>
          <tbody>{rows.map((a) => (
            <tr key={a.id}>
              <td class="nowrap">{fmtTime(a.time)}</td>
              <td>{a.actor}</td>
              <td><code>{a.action}</code></td>
              <td>{a.target}</td>
              <td>{a.remote || a.source || a.from || a.ip || ''}</td>
              <td class={a.result === 'ok' ? 'ok' : 'bad'}>{a.result}</td>
              <td>{a.detail ? (
                open === a.id ? <pre class="output small">{JSON.stringify(a.detail, null, 2)}</pre>
                  : <button type="button" class="link" onClick={() => setOpen(a.id)}>show</button>
              ) : ''}</td>
            </tr>
          ))}</tbody>
        </table>
      </div>
    </section>
  );
}
