// Upgrade: agents replaced by a new binary of their type (docs/upgrade.md),
// a package of the repository or a release version, signed by make release,
// as an upgrade task (POST /api/agents/upgrade) with canary and rollout;
// the task's page then follows each agent.
import { useRef, useState } from 'preact/hooks';
import { ErrorBox, can, useInvalidField, useMe } from '../util.jsx';
import { Choice, PackageField, Rollout, Target, limitOf, selectorOf, targetFields, usePackages, useStart } from './taskform.jsx';

const TYPES = ['exec-agent', 'metrics-agent', 'log-agent', 'example-agent'];

// parseSignatures reads "<package name> <signature>" lines (a colon may
// separate them too) into the request's map; throws naming the bad line.
export function parseSignatures(text) {
  const out = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const m = /^([^\s:]+)[\s:]+(\S+)$/.exec(line);
    if (!m) throw new Error(`signatures: "${line.slice(0, 40)}": write the package name, a space and its signature`);
    out[m[1]] = m[2];
  }
  return out;
}

// upgradeRequest builds the POST /api/agents/upgrade body from the form.
export function upgradeRequest(f) {
  const req = { selector: selectorOf(f), agent_type: f.agentType.trim() };
  if (f.binary === 'package') {
    req.package = f.package.trim();
    if (f.signature.trim()) req.signature = f.signature.trim();
  } else {
    req.version = f.version.trim();
    const sigs = parseSignatures(f.signatures);
    if (Object.keys(sigs).length) req.signatures = sigs;
  }
  req.concurrency = limitOf(f.concurrency);
  req.max_errors = limitOf(f.maxErrors);
  if (Number(f.canary) > 0) req.canary = Number(f.canary);
  if (f.deadline.trim()) req.deadline = Number(f.deadline);
  if (f.stay.trim()) req.stay = Number(f.stay);
  return req;
}

export function Upgrade({ query }) {
  const me = useMe();
  const [f, setF] = useState({
    ...targetFields(query),
    agentType: query.get('type') || 'exec-agent', binary: 'package', package: '', signature: '', version: '', signatures: '',
    concurrency: '', maxErrors: '', canary: '', deadline: '', stay: '',
  });
  const { start, busy, err, setErr } = useStart('/api/agents/upgrade');
  const form = useRef(null);
  useInvalidField(form, err, { selector: f.target === 'ids' ? 'ids' : 'labels' });
  const pkgs = usePackages(me);
  const set = (k) => (e) => setF({ ...f, [k]: e.currentTarget.value });

  if (!can(me, 'agents:upgrade')) return <section><h1>Upgrade agents</h1><p>This token may not upgrade agents (scope agents:upgrade).</p></section>;

  const submit = (e) => {
    e.preventDefault();
    let body;
    try { body = upgradeRequest(f); } catch (e2) { setErr(Object.assign(e2, { field: 'signatures' })); return; }
    start(body);
  };

  return (
    <section>
      <h1>Upgrade agents</h1>
      <p class="muted">Each agent downloads the binary, checks its sha256 and its signature (the key in the agent's <code>basic.upgrade.public_key</code>), swaps it in and restarts; a new binary that does not stay connected is rolled back by the agent's watchdog. Keep the task's link: the tasks list shows fleet tasks only.</p>
      <form class="run" ref={form} onSubmit={submit} aria-label="Upgrade">
        <div class="row wrap">
          <label>Agent type <input name="agent_type" list="agent-types" value={f.agentType} onInput={set('agentType')} /></label>
          <datalist id="agent-types">{TYPES.map((t) => <option key={t} value={t} />)}</datalist>
        </div>
        <Target f={f} set={set} type={f.agentType.trim()} />
        <fieldset>
          <legend>Binary</legend>
          <Choice name="binary" value={f.binary} set={set('binary')} options={[['package', 'A package of the repository'], ['version', 'A release version']]} />
          {f.binary === 'package' ? (
            <>
              <div class="row wrap">
                <PackageField name="package" value={f.package} set={set('package')} pkgs={pkgs} keep={(p) => p.kind === 'bin' || p.kind === 'exe'} />
              </div>
              <label><span>Signature (the text of the <code>.sig</code> file <code>make release</code> wrote)</span><textarea name="signature" class="mono" rows="2" value={f.signature} onInput={set('signature')} /></label>
            </>
          ) : (
            <>
              <div class="row wrap">
                <label>Version <input name="version" size="16" value={f.version} onInput={set('version')} placeholder="2.0.0" /></label>
                <span class="muted small">each agent gets the package <code>{f.agentType || '<type>'}_{f.version || '<version>'}_&lt;os&gt;_&lt;arch&gt;</code> of the repository</span>
              </div>
              <label>Signatures, one per line: the package name, a space, its signature<textarea name="signatures" class="mono" rows="3" value={f.signatures} onInput={set('signatures')} /></label>
            </>
          )}
        </fieldset>
        <Rollout f={f} set={set}>
          <label>Deadline (s) <input name="deadline" type="number" min="2" value={f.deadline} onInput={set('deadline')} placeholder="120" title="the new binary must be up within it, or it is rolled back" /></label>
          <label>Stay (s) <input name="stay" type="number" min="1" value={f.stay} onInput={set('stay')} placeholder="10" title="how long the new binary must stay connected" /></label>
        </Rollout>
        <button type="submit" disabled={busy}>{busy ? 'Starting…' : 'Upgrade'}</button>
        <ErrorBox error={err} />
      </form>
    </section>
  );
}
