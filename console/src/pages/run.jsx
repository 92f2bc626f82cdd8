// Run: a command or a script on hosts picked by id or by selector, as a
// fleet task (POST /api/tasks) with its rollout options; the task's page
// then shows each host's live output.
import { useState } from 'preact/hooks';
import { ErrorBox, can, useMe } from '../util.jsx';
import { Choice, Rollout, Target, limitOf, selectorOf, targetFields, useStart } from './taskform.jsx';

const TYPES = ['sh', 'bash', 'python3', 'python', 'powershell', 'php', 'lua'];

// requestFrom builds the POST /api/tasks body from the form.
export function requestFrom(f) {
  const req = { selector: selectorOf(f) };
  if (f.kind === 'command') { req.script = f.command; req.type = 'sh'; } else if (f.kind === 'script') { req.script = f.script; req.type = f.type; } else {
    const lines = f.program.split('\n').map((s) => s.trim()).filter(Boolean);
    req.cmd = lines[0] || '';
    req.args = lines.slice(1);
  }
  req.concurrency = limitOf(f.concurrency);
  req.max_errors = limitOf(f.maxErrors);
  if (Number(f.canary) > 0) req.canary = Number(f.canary);
  if (Number(f.timeout) > 0) req.timeout = Number(f.timeout);
  if (f.user.trim()) req.user = f.user.trim();
  return req;
}

export function Run({ query }) {
  const me = useMe();
  const [f, setF] = useState({
    ...targetFields(query),
    kind: 'command', command: '', script: '', type: 'sh', program: '',
    concurrency: '', maxErrors: '', canary: '', timeout: '60', user: '',
  });
  const { start, busy, err } = useStart('/api/tasks');
  const set = (k) => (e) => setF({ ...f, [k]: e.currentTarget.type === 'checkbox' ? e.currentTarget.checked : e.currentTarget.value });

  if (!can(me, 'tasks:write')) return <section><h1>Run</h1><p>This token may not run commands on the fleet.</p></section>;

  const submit = (e) => {
    e.preventDefault();
    start(requestFrom(f));
  };

  return (
    <section>
      <h1>Run on the fleet</h1>
      <form class="run" onSubmit={submit}>
        <Target f={f} set={set} />
        <fieldset>
          <legend>What</legend>
          <Choice name="kind" value={f.kind} set={set('kind')} options={[['command', 'Shell command'], ['script', 'Script'], ['program', 'Program and arguments']]} />
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
        <Rollout f={f} set={set}>
          <label>Timeout per host (s) <input name="timeout" type="number" min="1" size="5" value={f.timeout} onInput={set('timeout')} /></label>
          <label>Run as user <input name="user" size="8" value={f.user} onInput={set('user')} placeholder="(agent's)" /></label>
        </Rollout>
        <button type="submit" disabled={busy}>{busy ? 'Starting…' : 'Run'}</button>
        <ErrorBox error={err} />
      </form>
    </section>
  );
}
