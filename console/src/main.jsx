// The console's entry: sign-in, the frame (header, navigation) and the
// routes. Pages live in pages/; the terminal and the charts are loaded by
// the pages that use them.
import './style.css';
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, get, session, setUnauthorizedHandler, takeFragmentToken } from './api.js';
import { Link, Me, can, navigate, useLocation } from './util.jsx';
import { SignIn } from './pages/signin.jsx';
import { Fleet, prefetchFleet } from './pages/fleet.jsx';
import { Host } from './pages/host.jsx';
import { TerminalPage } from './pages/terminal.jsx';
import { Files } from './pages/files.jsx';
import { Run } from './pages/run.jsx';
import { Tasks, TaskDetail, LayoutDetail, LayoutNew } from './pages/tasks.jsx';
import { Audit } from './pages/audit.jsx';
import { Logs, LogProject, LogProjectForm } from './pages/logs.jsx';
import { Packages } from './pages/packages.jsx';
import { Install } from './pages/install.jsx';
import { Upgrade } from './pages/upgrade.jsx';

// identify reads what the token may do. Servers without GET /api/whoami
// (before scoped tokens) are taken as an operator token until a write is
// refused with 403, which turns the session read-only (for the rest of the
// tab's session).
const LEGACY_RO = 'agentfleet.read-only';
const READ_SCOPES = ['agents:read', 'metrics:read', 'files:read', 'tasks:read', 'exec:read', 'audit:read', 'logs:read'];
const legacyReadOnly = (m) => ({ ...m, read_only: true, scopes: READ_SCOPES });

export async function identify() {
  try {
    return await get('/api/whoami');
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 404)) throw e;
    const me = { name: 'token', scopes: ['admin'], read_only: false, legacy: true };
    return sessionStorage.getItem(LEGACY_RO) ? legacyReadOnly(me) : me;
  }
}

// The navigation. Each entry shows when the token holds its scope.
// Cluster members get their entry here once the server has that
// capability and its page exists.
const NAV = [
  { href: '/ui/fleet', label: 'Fleet', scope: 'agents:read', match: /^\/ui\/(fleet|hosts)/ },
  { href: '/ui/run', label: 'Run', scope: 'tasks:write' },
  { href: '/ui/tasks', label: 'Tasks & layouts', scope: 'tasks:read', match: /^\/ui\/(tasks|layouts)/ },
  { href: '/ui/logs', label: 'Logs', scope: 'logging:read', match: /^\/ui\/logs/ },
  { href: '/ui/install', label: 'Install', scope: 'exec:run' },
  { href: '/ui/upgrade', label: 'Upgrade agents', scope: 'agents:upgrade' },
  { href: '/ui/packages', label: 'Packages', scope: 'packages:read' },
  { href: '/ui/audit', label: 'Audit log', scope: 'audit:read' },
];

function route(path, query) {
  let m;
  if ((m = path.match(/^\/ui\/hosts\/([^/]+)\/terminal$/))) return <TerminalPage id={decodeURIComponent(m[1])} />;
  if ((m = path.match(/^\/ui\/hosts\/([^/]+)\/files$/))) return <Files id={decodeURIComponent(m[1])} dir={query.get('dir') || ''} />;
  if ((m = path.match(/^\/ui\/hosts\/([^/]+)$/))) return <Host id={decodeURIComponent(m[1])} tab={query.get('tab') || 'overview'} />;
  if ((m = path.match(/^\/ui\/tasks\/([^/]+)$/))) return <TaskDetail id={decodeURIComponent(m[1])} />;
  if (path === '/ui/layouts/new') return <LayoutNew />;
  if (path === '/ui/logs/new') return <LogProjectForm />;
  if ((m = path.match(/^\/ui\/logs\/([^/]+)\/edit$/))) return <LogProjectForm pid={decodeURIComponent(m[1])} />;
  if ((m = path.match(/^\/ui\/logs\/([^/]+)$/))) return <LogProject pid={decodeURIComponent(m[1])} tab={query.get('tab') || 'nodes'} query={query} />;
  if ((m = path.match(/^\/ui\/layouts\/([^/]+)$/))) return <LayoutDetail id={decodeURIComponent(m[1])} />;
  switch (path) {
    case '/ui/fleet': return <Fleet query={query} />;
    case '/ui/run': return <Run query={query} />;
    case '/ui/tasks': return <Tasks query={query} />;
    case '/ui/logs': return <Logs />;
    case '/ui/audit': return <Audit query={query} />;
    case '/ui/packages': return <Packages />;
    case '/ui/install': return <Install query={query} />;
    case '/ui/upgrade': return <Upgrade query={query} />;
  }
  return (
    <section>
      <h1>Not found</h1>
      <p>No page at {path}. <Link href="/ui/fleet">Go to the fleet</Link>.</p>
    </section>
  );
}

function Frame({ me, info, onSignOut, children }) {
  const { path } = useLocation();
  const [open, setOpen] = useState(false);
  useEffect(() => setOpen(false), [path]);
  return (
    <div class="frame">
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <button type="button" class="menu" aria-expanded={open} aria-controls="nav" onClick={() => setOpen(!open)}>☰<span class="sr">Menu</span></button>
        <Link href="/ui/fleet" class="brand">agentfleet</Link>
        <span class="muted server">{info ? `${info.id || 'server'} · ${info.version} · ${info.agents} connected` : ''}</span>
        <span class="who">
          <span title={(me.scopes || []).join(' ')}>{me.name}</span>
          {me.read_only ? <span class="badge" data-testid="read-only">read-only</span> : null}
          {me.selector ? <span class="badge" title="this token reaches only agents matching">{me.selector}</span> : null}
          <button type="button" onClick={onSignOut}>Sign out</button>
        </span>
      </header>
      <nav id="nav" class={open ? 'side open' : 'side'} aria-label="Main">
        <ul>
          {NAV.filter((n) => can(me, n.scope)).map((n) => {
            const cur = n.match ? n.match.test(path) : path === n.href;
            return <li key={n.href}><Link href={n.href} aria-current={cur ? 'page' : undefined}>{n.label}</Link></li>;
          })}
          <li><a href="/docs/">API reference</a></li>
        </ul>
      </nav>
      <main id="main" tabIndex="-1">{children}</main>
    </div>
  );
}

function App() {
  const { path, query } = useLocation();
  const [me, setMe] = useState(null);
  const [info, setInfo] = useState(null);
  const [state, setState] = useState('starting'); // starting | signin | ready
  const [error, setError] = useState(null);

  const signOut = (why) => {
    session.clear();
    try { sessionStorage.removeItem(LEGACY_RO); } catch { /* storage off */ }
    setMe(null);
    setError(why || null);
    setState('signin');
  };

  const start = async () => {
    if (!session.token()) { setState('signin'); return; }
    try {
      const who = await identify();
      setMe(who);
      setState('ready');
      // The header's server line waits for the first page to be drawn.
      setTimeout(() => get('/api/info/server').then(setInfo, () => {}), 300);
    } catch (e) {
      signOut(e);
    }
  };

  useEffect(() => {
    setUnauthorizedHandler((e) => signOut(e || new ApiError(401, 'the session ended: sign in again')));
    const tok = takeFragmentToken();
    if (tok) session.set(tok);
    if (session.token()) prefetchFleet();
    start();
    // A legacy server: a refused write means a read-only token.
    const onForbidden = () => setMe((m) => {
      if (!m || !m.legacy || m.read_only) return m;
      sessionStorage.setItem(LEGACY_RO, '1');
      return legacyReadOnly(m);
    });
    addEventListener('agentfleet:forbidden', onForbidden);
    return () => removeEventListener('agentfleet:forbidden', onForbidden);
  }, []);

  useEffect(() => {
    if (state !== 'ready') return;
    const next = query.get('next') || '';
    if (next.startsWith('/docs/')) location.assign(next); // back to the API reference after signing in
    else if (path === '/ui/' || path === '/ui' || path === '/ui/signin') navigate('/ui/fleet', { replace: true });
  }, [state, path]);

  if (state === 'starting') return <p class="loading">Loading…</p>;
  if (state === 'signin') {
    return <SignIn error={error} onSignedIn={(tok) => { session.set(tok); setError(null); setState('starting'); start(); }} />;
  }
  return (
    <Me.Provider value={me}>
      <Frame me={me} info={info} onSignOut={() => signOut(null)}>
        {route(path, query)}
      </Frame>
    </Me.Provider>
  );
}

render(<App />, document.getElementById('app'));
