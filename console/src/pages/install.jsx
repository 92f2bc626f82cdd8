// Install: software on hosts (docs/install.md) — a package of the server's
// repository or a download link, on one exec-agent or a selector, as a
// task (POST /api/install/run); the task's page then shows each host's
// action log live. The password of su/sudo lives in this page's memory
// only: sent once in the request, never stored in the browser, never shown
// again (the server does not store or return it either).
import { useRef, useState } from 'preact/hooks';
import { ErrorBox, can, fmtTime, useInvalidField, useMe } from '../util.jsx';
import { Choice, PackageField, Rollout, Target, limitOf, selectorOf, targetFields, usePackages, useStart } from './taskform.jsx';

const KINDS = ['deb', 'rpm', 'tar', 'tar.gz', 'tar.bz2', 'zip', 'msi', 'exe'];

// installRequest builds the POST /api/install/run body from the form: one
// agent id is the seed's id, anything else a selector.
export function installRequest(f) {
  const sel = selectorOf(f);
  const req = f.target === 'ids' && sel.ids.length === 1 ? { id: sel.ids[0] } : { selector: sel };
  if (f.source === 'repo') req.uri = f.uri.trim();
  else {
    req.url = f.url.trim();
    if (f.kind) req.kind = f.kind;
  }
  if (f.sha256.trim()) req.sha256 = f.sha256.trim().toLowerCase();
  if (f.dir.trim()) req.dir = f.dir.trim();
  if (f.timeout.trim()) req.timeout = Number(f.timeout);
  if (f.deps) req.deps = true;
  if (f.auth) {
    req.auth = f.auth;
    if (f.user.trim()) req.user = f.user.trim();
    // The protocol's password form: $0$ and the text ($1$ passes as given).
    if (f.pass) req.pass = /^\$[01]\$/.test(f.pass) ? f.pass : '$0$' + f.pass;
  }
  if (req.selector) {
    req.concurrency = limitOf(f.concurrency);
    req.max_errors = limitOf(f.maxErrors);
    if (Number(f.canary) > 0) req.canary = Number(f.canary);
  }
  return req;
}

// The form controls of the request fields the server's 400s name.
const ALIAS = { id: 'ids', selector: 'labels' };

export function Install({ query }) {
  const me = useMe();
  const [f, setF] = useState({
    ...targetFields(query),
    source: query.get('url') ? 'url' : 'repo', uri: query.get('uri') || '', url: query.get('url') || '', sha256: '', kind: '',
    dir: '', timeout: '', deps: false, auth: '', user: '', pass: '',
    concurrency: '', maxErrors: '', canary: '',
  });
  const { start, busy, err } = useStart('/api/install/run');
  const form = useRef(null);
  useInvalidField(form, err, ALIAS);
  const pkgs = usePackages(me);
  const set = (k) => (e) => setF({ ...f, [k]: e.currentTarget.type === 'checkbox' ? e.currentTarget.checked : e.currentTarget.value });

  if (!can(me, 'exec:run')) return <section><h1>Install</h1><p>This token may not install software on hosts (scope exec:run).</p></section>;

  const chosen = (pkgs.data || []).find((p) => p.name === f.uri);
  // The password leaves with the page (the task's page replaces it).
  const submit = (e) => {
    e.preventDefault();
    start(installRequest(f));
  };

  return (
    <section>
      <h1>Install software</h1>
      <p class="muted">deb and rpm packages are installed with dpkg or rpm (apt-get, dnf or yum with dependencies), archives are unpacked into a directory, msi and exe run silently. The agent checks the sha256 before it installs anything.</p>
      <form class="run" ref={form} onSubmit={submit} aria-label="Install">
        <Target f={f} set={set} />
        <fieldset>
          <legend>What</legend>
          <Choice name="source" value={f.source} set={set('source')} options={[['repo', 'A package of the repository'], ['url', 'A download link']]} />
          {f.source === 'repo' ? (
            <div class="row wrap">
              <PackageField name="uri" value={f.uri} set={set('uri')} pkgs={pkgs} />
              {chosen ? <span class="muted" data-testid="package-info">sha256 <code>{chosen.sha256.slice(0, 16)}…</code>, uploaded {fmtTime(chosen.created)}</span> : null}
              {pkgs.data && !pkgs.data.length ? <span class="muted">The repository is empty: upload on the Packages page.</span> : null}
            </div>
          ) : (
            <div class="row wrap">
              <label>URL (http or https) <input name="url" type="url" size="50" value={f.url} onInput={set('url')} placeholder="https://repo.example.com/app_1.2.3_amd64.deb" /></label>
              <label>Type <select name="kind" value={f.kind} onChange={set('kind')}>
                <option value="">from the name</option>
                {KINDS.map((k) => <option key={k}>{k}</option>)}
              </select></label>
            </div>
          )}
          <label>SHA-256 {f.source === 'repo' ? '(the repository’s when empty)' : '(checked by the agent before it installs)'}
            <input name="sha256" class="mono" size="64" value={f.sha256} onInput={set('sha256')} /></label>
        </fieldset>
        <fieldset>
          <legend>How</legend>
          <div class="row wrap">
            <label>Directory <input name="dir" size="30" value={f.dir} onInput={set('dir')} placeholder="/opt/app (archives, msi, exe)" /></label>
            <label>Timeout (s) <input name="timeout" type="number" min="1" value={f.timeout} onInput={set('timeout')} placeholder="300" /></label>
            <label class="radio"><input type="checkbox" name="deps" checked={f.deps} onChange={set('deps')} /> with dependencies (apt-get, dnf, yum)</label>
          </div>
          <div class="row wrap">
            <label>Run the installer <select name="auth" value={f.auth} onChange={set('auth')}>
              <option value="">as the agent's user</option><option value="sudo">with sudo</option><option value="su">with su</option>
            </select></label>
            {f.auth ? <label>User <input name="user" size="10" value={f.user} onInput={set('user')} placeholder="root" autocomplete="off" /></label> : null}
            {f.auth ? <label>Password <input name="pass" type="password" size="16" value={f.pass} onInput={set('pass')} autocomplete="off" /></label> : null}
          </div>
          {f.auth ? <p class="muted small">The password is sent once, with this request: it is not kept in this browser, and the server neither stores, logs nor shows it.</p> : null}
        </fieldset>
        {f.target === 'selector' || selectorOf(f).ids?.length > 1 ? (
          <Rollout f={f} set={set} />
        ) : null}
        <button type="submit" disabled={busy}>{busy ? 'Starting…' : 'Install'}</button>
        <ErrorBox error={err} />
      </form>
    </section>
  );
}

// installActions is a host's action log: the stored actions of the task
// (in order) merged with those its live output carries (one JSON action
// per line, each with its position n), by position.
export function installActions(stored, text) {
  const byN = new Map();
  (stored || []).forEach((a, i) => byN.set(i, a));
  for (const line of (text || '').split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const a = JSON.parse(line);
      if (Number.isInteger(a.n) && !byN.has(a.n)) byN.set(a.n, a);
    } catch { /* a line cut by the page's trimming */ }
  }
  return [...byN.entries()].sort((x, y) => x[0] - y[0]).map(([, a]) => a);
}

export function ActionLog({ actions }) {
  if (!actions.length) return <p class="muted small">No action yet.</p>;
  return (
    <table class="grid compact" data-testid="actions">
      <thead><tr><th>Action</th><th>Name</th><th>Time</th><th>Result</th><th>Message</th></tr></thead>
      <tbody>{actions.map((a, i) => (
        <tr key={i}>
          <td>{a.action}</td>
          <td class="mono">{a.name}</td>
          <td class="nowrap">{fmtTime(a.time)}</td>
          <td class={a.ok ? 'ok' : 'bad'}>{a.ok ? 'ok' : 'failed'}</td>
          <td class="msg">{a.msg}</td>
        </tr>
      ))}</tbody>
    </table>
  );
}
