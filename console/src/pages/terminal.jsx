// Terminal: an interactive shell on the host of an exec-agent, over
// GET /api/exec/{id}/shell upgraded to a WebSocket (subprotocol
// agentfleet.shell.v1; the token rides in a second offered subprotocol,
// bearer.<token>, as browsers cannot set headers on a WebSocket). Binary
// frames carry the terminal's bytes both ways; text frames are JSON
// control messages (resize out; exit and error in).
import { useEffect, useRef, useState } from 'preact/hooks';
import { session } from '../api.js';
import { ErrorBox, Link, can, useMe } from '../util.jsx';
import { useHost } from './host.jsx';

const enc = new TextEncoder();

export function TerminalPage({ id }) {
  const me = useMe();
  const host = useHost(id);
  const box = useRef(null);
  const term = useRef(null);
  const ws = useRef(null);
  const [status, setStatus] = useState('connecting');
  const [err, setErr] = useState(null);
  const [opts, setOpts] = useState({ user: '', cmd: '' });
  const [gen, setGen] = useState(0); // bump to reconnect
  const agent = host.data && host.data.agent;

  useEffect(() => {
    let disposed = false;
    let cleanup = () => {};
    (async () => {
      const [{ Terminal }, { FitAddon }] = await Promise.all([import('@xterm/xterm'), import('@xterm/addon-fit')]);
      if (disposed) return;
      const t = new Terminal({
        cursorBlink: true, convertEol: false, scrollback: 5000, fontSize: 14,
        fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
        theme: { background: '#111417', foreground: '#e6e6e6' },
      });
      const fit = new FitAddon();
      t.loadAddon(fit);
      t.open(box.current);
      fit.fit();
      term.current = t;
      // Ctrl+Shift+C copies the selection (Ctrl+C is the shell's interrupt);
      // Ctrl+Shift+V and the browser's paste reach the shell as typed text.
      t.attachCustomKeyEventHandler((e) => {
        if (e.type === 'keydown' && e.ctrlKey && e.shiftKey && (e.key === 'C' || e.key === 'c')) {
          const sel = t.getSelection();
          if (sel && navigator.clipboard) navigator.clipboard.writeText(sel).catch(() => {});
          return false;
        }
        return true;
      });
      const q = new URLSearchParams({ cols: String(t.cols), rows: String(t.rows) });
      if (opts.cmd) q.set('cmd', opts.cmd);
      if (opts.user) q.set('user', opts.user);
      const url = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/api/exec/${encodeURIComponent(id)}/shell?${q}`;
      // A subprotocol is an HTTP token: other characters cannot be offered.
      if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(session.token())) {
        setStatus('failed');
        setErr(new Error("this token has characters a WebSocket subprotocol cannot carry (letters, digits and !#$%&'*+-.^_`|~ only): the terminal needs a token without them"));
        return;
      }
      let sock;
      try {
        sock = new WebSocket(url, ['agentfleet.shell.v1', 'bearer.' + session.token()]);
      } catch (e) {
        setStatus('failed');
        setErr(new Error('cannot open the WebSocket: ' + e.message));
        return;
      }
      ws.current = sock;
      sock.binaryType = 'arraybuffer';
      let exited = false;
      sock.onopen = () => { setStatus('connected'); t.focus(); };
      sock.onmessage = (ev) => {
        if (typeof ev.data !== 'string') { t.write(new Uint8Array(ev.data)); return; }
        let m;
        try { m = JSON.parse(ev.data); } catch { return; }
        if (m.type === 'exit') {
          exited = true;
          t.write(`\r\n\x1b[2m[process exited with code ${m.code}]\x1b[0m\r\n`);
          setStatus('exited');
        } else if (m.type === 'error') {
          setErr(new Error(m.msg));
        }
      };
      sock.onerror = () => setErr((e) => e || new Error('the connection failed (is the shell route available on this server, and the agent online?)'));
      sock.onclose = (ev) => {
        if (!exited) {
          setStatus('closed');
          t.write(`\r\n\x1b[2m[connection closed${ev.code ? ' ' + ev.code : ''}${ev.reason ? ': ' + ev.reason : ''}]\x1b[0m\r\n`);
        }
      };
      const d1 = t.onData((d) => { if (sock.readyState === 1) sock.send(enc.encode(d)); });
      const d2 = t.onBinary((d) => { if (sock.readyState === 1) sock.send(Uint8Array.from(d, (c) => c.charCodeAt(0))); });
      const d3 = t.onResize(({ cols, rows }) => { if (sock.readyState === 1) sock.send(JSON.stringify({ type: 'resize', cols, rows })); });
      const ro = new ResizeObserver(() => { try { fit.fit(); } catch { /* detached */ } });
      ro.observe(box.current);
      cleanup = () => { ro.disconnect(); d1.dispose(); d2.dispose(); d3.dispose(); sock.close(); t.dispose(); };
    })();
    return () => { disposed = true; cleanup(); };
  }, [id, gen]);

  if (!can(me, 'exec:run')) return <section><h1>Terminal</h1><p>This token may not open shells.</p></section>;
  return (
    <section class="terminal-page">
      <h1>Terminal <span class="muted">{agent ? agent.host_name || agent.id : id}</span></h1>
      <div class="toolbar">
        <Link href={'/ui/hosts/' + encodeURIComponent(id)}>← host</Link>
        <span role="status" data-testid="term-status" class={'state state-' + status}>{status}</span>
        <form class="inline" onSubmit={(e) => { e.preventDefault(); setErr(null); setStatus('connecting'); setGen((g) => g + 1); }}>
          <label>User <input size="8" value={opts.user} onInput={(e) => setOpts({ ...opts, user: e.currentTarget.value })} placeholder="(agent's)" /></label>
          <label>Command <input size="14" value={opts.cmd} onInput={(e) => setOpts({ ...opts, cmd: e.currentTarget.value })} placeholder="(login shell)" /></label>
          <button type="submit">{status === 'connected' ? 'Reconnect' : 'Connect'}</button>
        </form>
        <span class="muted small">Ctrl+Shift+C copies, Ctrl+Shift+V pastes.</span>
      </div>
      <ErrorBox error={err} />
      <div class="term" ref={box} data-testid="terminal" />
    </section>
  );
}
