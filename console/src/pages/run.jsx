// Run: a command or a script on hosts picked by id or by selector, as a
// fleet task (POST /api/tasks) with its rollout options; the task's page
// then shows each host's live output.
import { useEffect, useState } from 'preact/hooks';
import { api, qs } from '../api.js';
import { ErrorBox, can, navigate, useMe } from '../util.jsx';

const TYPES = ['sh', 'bash', 'python3', 'python', 'powershell', 'php', 'lua'];

// requestFrom builds the POST /api/tasks body from the form.
export function requestFrom(f) {
  const sel = {};
  if (f.target === 'ids') sel.ids = f.ids.split(/[\s,]+/).filter(Boolean);
  else {
    if (f.labels.trim()) sel.labels = f.labels.trim();
    if (f.keyword.trim()) sel.keyword = f.keyword.trim();
    if (f.os) sel.os = f.os;
  }
  const req = { selector: sel };
  if (f.kind === 'command') { req.script = f.command; req.type = 'sh'; } else if (f.kind === 'script') { req.script = f.script; req.type = f.type; } else {
    const lines = f.program.split('\n').map((s) => s.trim()).filter(Boolean);
    req.cmd = lines[0] || '';
    req.args = lines.slice(1);
  }
  if (f.concurrency.trim()) req.concurrency = /%$/.test(f.concurrency.trim()) ? f.concurrency.trim() : Number(f.concurrency);
  if (f.maxErrors.trim()) req.max_errors = /%$/.test(f.maxErrors.trim()) ? f.maxErrors.trim() : Number(f.maxErrors);
  if (Number(f.canary) > 0) req.canary = Number(f.canary);
  if (Number(f.timeout) > 0) req.timeout = Number(f.timeout);
  if (f.user.trim()) req.user = f.user.trim();
  return req;
}

export function Run({ query }) {
  const me = useMe();
  const [f, setF] = useState({
    target: query.get('ids') ? 'ids' : 'selector',
    ids: (query.get('ids') || '').split(',').join('\n'),
    labels: query.get('labels') || '', keyword: '', os: '',
    kind: 'command', command: '', script: '', type: 'sh', program: '',
    concurrency: '', maxErrors: '', canary: '', timeout: '60', user: '',
  });
  const [matches, setMatches] = useState(null);
  const [err, setErr] = useState(null);
  const [busy, setBusy] = useState(false);
  const set = (k) => (e) => setF({ ...f, [k]: e.currentTarget.type === 'checkbox' ? e.currentTarget.checked : e.currentTarget.value });

  // How many exec-agents the selector reaches (and how many are online).
  useEffect(() => {
    if (f.target !== 'selector') { setMatches(null); return undefined; }
    const t = setTimeout(async () => {
      try {
        const base = { type: 'exec-agent', labels: f.labels.trim(), keyword: f.keyword.trim(), os: f.os, size: 1 };
        const [all, on] = await Promise.all([api('/api/agents' + qs(base)), api('/api/agents' + qs({ ...base, online: true }))]);
        setMatches({ all: all.total, online: on.total });
      } catch (e) { setMatches({ error: e.message }); }
    }, 300);
    return () => clearTimeout(t);
  }, [f.target, f.labels, f.keyword, f.os]);

  if (!can(me, 'tasks:write')) return <section><h1>Run</h1><p>This token may not run commands on the fleet.</p></section>;

  const submit = async (e) => {
    e.preventDefault();
    setErr(null);
    setBusy(true);
    try {
      const r = (await api('/api/tasks', { method: 'POST', body: requestFrom(f) })).payload;
      navigate('/ui/tasks/' + encodeURIComponent(r.id));
    } catch (e2) { setErr(e2); setBusy(false); }
  };

  return (
    <section>
      <h1>Run on the fleet</h1>
      <form class="run" onSubmit={submit}>
        <fieldset>
          <legend>Where</legend>
          <div class="row">
            <label class="radio"><input type="radio" name="target" value="selector" checked={f.target === 'selector'} onChange={set('target')} /> Selector</label>
            <label class="radio"><input type="radio" name="target" value="ids" checked={f.target === 'ids'} onChange={set('target')} /> Agent ids</label>
          </div>
          {f.target === 'ids' ? (
            <label>Exec-agent ids (one per line or comma-separated)<textarea name="ids" rows="3" value={f.ids} onInput={set('ids')} /></label>
          ) : (
            <div class="row wrap">
              <label>Labels <input name="labels" placeholder="env=prod, !canary" value={f.labels} onInput={set('labels')} /></label>
              <label>Text <input name="keyword" placeholder="host name, IP, id" value={f.keyword} onInput={set('keyword')} /></label>
              <label>OS <select name="os" value={f.os} onChange={set('os')}>
                <option value="">any</option><option>linux</option><option>windows</option><option>darwin</option>
              </select></label>
              <span class="muted" data-testid="matches" aria-live="polite">
                {matches ? (matches.error ? matches.error : `${matches.all} exec-agents match, ${matches.online} online`) : ''}
              </span>
            </div>
          )}
        </fieldset>
        <fieldset>
          <legend>What</legend>
          <div class="row">
            <label class="radio"><input type="radio" name="kind" value="command" checked={f.kind === 'command'} onChange={set('kind')} /> Shell command</label>
            <label class="radio"><input type="radio" name="kind" value="script" checked={f.kind === 'script'} onChange={set('kind')} /> Script</label>
            <label class="radio"><input type="radio" name="kind" value="program" checked={f.kind === 'program'} onChange={set('kind')} /> Program and arguments</label>
          </div>
          {f.kind === 'command' ? (
            <label><span>Command (run by <code>sh -c</code>)</span><input name="command" class="mono" value={f.command} onInput={set('command')} placeholder="uptime; df -h /" required /></label>
          ) : f.kind === 'script' ? (
            <div>
              <label>Interpreter <select name="type" value={f.type} onChange={set('type')}>{TYPES.map((t) => <option key={t}>{t}</option>)}</select></label>
              <label>Script (at most 64 KiB)<textarea name="script" class="mono" rows="8" value={f.script} onInput={set('script')} required /></label>
            </div>
          ) : (
            <label>Program on the first line, one argument per line<textarea name="program" class="mono" rows="4" value={f.program} onInput={set('program')} required /></label>
          )}
        </fieldset>
        <fieldset>
          <legend>Rollout</legend>
          <div class="row wrap">
            <label>Concurrency <input name="concurrency" size="6" placeholder="all" value={f.concurrency} onInput={set('concurrency')} title="N or N%" /></label>
            <label>Max errors <input name="max_errors" size="6" placeholder="no limit" value={f.maxErrors} onInput={set('maxErrors')} title="failures tolerated: N or N%" /></label>
            <label>Canary <input name="canary" type="number" min="0" size="4" value={f.canary} onInput={set('canary')} title="run on N hosts first; the rest only if all pass" /></label>
            <label>Timeout per host (s) <input name="timeout" type="number" min="1" size="5" value={f.timeout} onInput={set('timeout')} /></label>
            <label>Run as user <input name="user" size="8" value={f.user} onInput={set('user')} placeholder="(agent's)" /></label>
          </div>
        </fieldset>
        <button type="submit" disabled={busy}>{busy ? 'Starting…' : 'Run'}</button>
        <ErrorBox error={err} />
      </form>
    </section>
  );
}
