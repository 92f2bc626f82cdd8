// The browser tests' world: the real bin/agent-server (SQLite, loopback)
// with a real exec-agent and metrics-agent on this machine, and Debian's
// Chromium driven by playwright-core with a fresh profile.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const bin = process.env.BIN ? process.env.BIN : join(root, 'bin');
export const shots = process.env.SCREENSHOTS || join(root, 'artifacts', 'screenshots');

// The browser: Debian's chromium unless CHROME names another build
// (GitHub's Ubuntu runners have Google Chrome); never a downloaded one.
export const chrome = process.env.CHROME || '/usr/bin/chromium';

// The flags this closed network needs (no background connections).
export const chromeArgs = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

export const secret = () => randomBytes(24).toString('hex');

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

// until polls cond (async) until it returns a truthy value, or fails after
// ms with what: tests wait on conditions, never on the clock.
export async function until(what, cond, ms = 30000) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try { const v = await cond(); if (v) return v; } catch (e) { last = e; }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? ': ' + last.message : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// newTab opens a tab of ctx that accepts dialogs and records page errors
// in errors.
export async function newTab(ctx, errors) {
  const p = await ctx.newPage();
  p.on('pageerror', (e) => errors.push(e.stack || e.message));
  p.on('dialog', (d) => d.accept());
  return p;
}

// signIn opens the console at base with a sign-in link for token.
export async function signIn(p, base, token) {
  await p.goto(base + '/ui/#token=' + token);
  await p.locator('nav#nav').waitFor();
}

export class World {
  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'console-test-'));
    this.procs = [];
    this.operator = secret();
    this.viewer = secret();
    this.enroll = secret();
    this.execId = 'web-1-exec';
    this.metricsId = 'web-1-metrics';
  }

  // start runs the binary name of bin/ (or exe, a copy elsewhere) in the
  // test's directory, its output in <logName>.log.
  start(name, args, logName = name, exe = join(bin, name)) {
    if (!existsSync(exe)) throw new Error(`${exe} missing: run make build first`);
    const log = join(this.dir, logName + '.log');
    const out = createWriteStream(log);
    const p = spawn(exe, args, { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout.pipe(out);
    p.stderr.pipe(out);
    p.exited = new Promise((r) => p.on('exit', r));
    p.logFile = log;
    this.procs.push(p);
    return p;
  }

  write(rel, text) {
    const p = join(this.dir, rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, text, { mode: 0o600 });
    return p;
  }

  // up starts the server (extra: more lines of its config) and, with
  // agents, the exec-agent (execConf: more lines of its config) and the
  // metrics-agent.
  async up({ agents = true, extra = '', execConf = '' } = {}) {
    this.port = await freePort();
    this.url = `http://127.0.0.1:${this.port}`;
    const conf = this.write('server/server.conf', `id = console-test
listen = ${this.port}
listen_addr = 127.0.0.1
data_dir = ${join(this.dir, 'server', 'data')}
cache_dir = ${join(this.dir, 'server', 'cache')}
log_dir = ${join(this.dir, 'server', 'logs')}
log_target = stdout
store.driver = sqlite
api.tokens = ops:${this.operator}
api.read_only_tokens = viewer:${this.viewer}
agent.tokens = enroll:${this.enroll}
hostmetrics.recent_step = 1s
hostmetrics.flush_interval = 1s
${extra}
`);
    this.server = this.start('agent-server', ['run', '--conf', conf]);
    await until('agent-server to answer', async () => (await fetch(this.url + '/readyz')).ok, 30000);
    if (!agents) return;
    this.start('exec-agent', ['run', '--conf', this.agentConf(this.execId, execConf)], this.execId);
    this.start('metrics-agent', ['run', '--conf', this.agentConf(this.metricsId, `task.jobs = static,usage,process,conns,temps
task.usage.interval = 1s
task.process.interval = 5s
task.conns.interval = 5s
task.temps.interval = 5s
`)], this.metricsId);
    await until('both agents online', async () => {
      const list = await this.get('/api/agents?online=true');
      return list.length >= 2;
    });
  }

  // agentConf writes the config of agent id (enrolled with this server,
  // labels role=web and console=test unless more sets basic.labels) and
  // returns its path.
  agentConf(id, more = '') {
    const labels = /^basic\.labels\s*=/m.test(more) ? '' : 'basic.labels = role=web, console=test\n';
    return this.write(`${id}/agent.conf`, `basic.id = ${id}
basic.server = 127.0.0.1:${this.port}
basic.token = ${this.enroll}
${labels}basic.log.target = stdout, file
basic.log.dir = ${join(this.dir, id, 'logs')}
${more}`);
  }

  async api(path, { method = 'GET', token = this.operator, body } = {}) {
    const headers = { Authorization: 'Bearer ' + token };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(this.url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let env = null;
    try { env = JSON.parse(text); } catch { /* not JSON */ }
    return { status: res.status, env, text, headers: res.headers };
  }

  async get(path) {
    const r = await this.api(path);
    if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${r.text.slice(0, 200)}`);
    return r.env.payload;
  }

  serverLog() { return readFileSync(this.server.logFile, 'utf8'); }

  async browser() {
    if (!existsSync(chrome)) throw new Error(`${chrome} missing: apt-get install chromium (or set CHROME)`);
    this.profile = mkdtempSync(join(tmpdir(), 'console-chromium-'));
    this.ctx = await chromium.launchPersistentContext(this.profile, {
      executablePath: chrome, headless: true, args: chromeArgs, viewport: { width: 1280, height: 800 }, acceptDownloads: true,
    });
    return this.ctx;
  }

  async down() {
    if (this.ctx) await this.ctx.close().catch(() => {});
    for (const p of this.procs.slice().reverse()) {
      if (p.exitCode === null) p.kill('SIGTERM');
      await Promise.race([p.exited, new Promise((r) => setTimeout(r, 15000))]);
      if (p.exitCode === null) p.kill('SIGKILL');
    }
    if (this.profile) rmSync(this.profile, { recursive: true, force: true });
    if (!process.env.KEEP) rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function shot(page, name) {
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, name + '.png'), fullPage: false });
}
