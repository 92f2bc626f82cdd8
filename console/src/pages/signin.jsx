// Sign-in: an API token, checked against the server before it is kept.
import { useState } from 'preact/hooks';
import { ApiError } from '../api.js';

export function SignIn({ error, onSignedIn }) {
  const [tok, setTok] = useState('');
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    const t = tok.trim();
    if (!t) return;
    setBusy(true);
    setErr(null);
    try {
      // Checked with this token only; it is stored once the server took it.
      const res = await fetch('/api/info/server', { headers: { Authorization: 'Bearer ' + t }, cache: 'no-store' });
      if (!res.ok) {
        let msg = res.statusText;
        try { msg = (await res.json()).msg || msg; } catch { /* not JSON */ }
        throw new ApiError(res.status, msg);
      }
      onSignedIn(t);
    } catch (e2) {
      setErr(e2);
      setBusy(false);
    }
  };
  const shown = err || error;
  return (
    <main class="signin" id="main">
      <form onSubmit={submit} aria-labelledby="signin-title">
        <h1 id="signin-title">agentfleet</h1>
        <p class="muted">Sign in with an API token of this server.</p>
        <label for="token">API token</label>
        <input id="token" name="token" type="password" autocomplete="current-password" spellcheck={false}
          value={tok} onInput={(e) => setTok(e.currentTarget.value)} autoFocus required />
        <button type="submit" disabled={busy}>{busy ? 'Checking…' : 'Sign in'}</button>
        {shown ? <div class="error" role="alert">{shown.status ? <b>{shown.status} </b> : null}{shown.message}</div> : null}
        <p class="muted small">The token stays in this tab (sessionStorage) until you sign out or close it. A fresh server
          writes one to <code>&lt;data_dir&gt;/api-token</code>. <a href="/docs/">API reference</a></p>
      </form>
    </main>
  );
}
