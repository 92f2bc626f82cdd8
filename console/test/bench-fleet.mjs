// First paint of the fleet page with many agents (BENCHMARKS.md, "Web
// console"). Not part of make test:
//
//   make build && (cd console && node test/bench-fleet.mjs)        # 15,000 agents, 7 runs
//   AGENTS=15000 RUNS=7 PROCS=2 node test/bench-fleet.mjs
//
// The real bin/agent-server (SQLite) with AGENTS simulated agents
// (bin/agent-sim, PROCS processes) connected; then, RUNS times, a cold
// Chromium (fresh profile: nothing cached) opens /ui/fleet already signed
// in. Per run, from the browser's performance timeline: first contentful
// paint, and the "fleet-rendered" mark the page sets in the first
// animation frame after the first page of agents is in the DOM (the table
// painted); plus the GET /api/agents call's own duration. Medians printed,
// after the medians of the API calls behind the page timed from Node.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { World, bin, chrome, chromeArgs, until } from './harness.mjs';

const AGENTS = Number(process.env.AGENTS || 15000);
const RUNS = Number(process.env.RUNS || 7);
const PROCS = Number(process.env.PROCS || 2);
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const la = () => loadavg().map((x) => x.toFixed(2)).join(' ');

const w = new World();
const sims = [];
try {
  await w.up({ agents: false, extra: 'connect_limit = 0\nconnect_burst = 0\napi.rate_limit = 0\n' });
  for (let i = 0; i < PROCS; i++) {
    const n = Math.floor(AGENTS / PROCS) + (i < AGENTS % PROCS ? 1 : 0);
    const p = spawn(join(bin, 'agent-sim'), ['-server', `ws://127.0.0.1:${w.port}/ws/agent`, '-token', w.enroll,
      '-type', 'exec-agent', '-n', String(n), '-id-prefix', `sim${i}-`, '-concurrency', '64', '-report', '1h'], { stdio: 'ignore' });
    sims.push(p);
  }
  await until(`${AGENTS} agents connected`, async () => (await w.get('/api/info/server')).agents >= AGENTS, 300000);
  await until(`${AGENTS} agents stored`, async () => (await w.api('/api/agents?size=1')).headers.get('x-total-count') >= AGENTS, 120000);
  console.log(`${AGENTS} agents connected and stored; load average ${la()}`);
  // The API calls behind the page, timed from here (15 each, median).
  for (const q of ['/api/agents?size=50', '/api/agents?size=50&sort=-last_seen', '/api/agents?size=50&keyword=sim1-0001', '/api/info/server']) {
    const ts = [];
    for (let i = 0; i < 15; i++) {
      const t0 = performance.now();
      const r = await w.api(q);
      if (r.status !== 200) throw new Error(`${q}: ${r.status}`);
      ts.push(performance.now() - t0);
    }
    console.log(`RESULT GET ${q}: median ${median(ts).toFixed(1)} ms, min ${Math.min(...ts).toFixed(1)} ms; load ${la()}`);
  }
  const fcp = [], rendered = [], apiMs = [];
  for (let r = 0; r < RUNS; r++) {
    const profile = mkdtempSync(join(tmpdir(), 'bench-fleet-'));
    const ctx = await chromium.launchPersistentContext(profile, { executablePath: chrome, headless: true, args: chromeArgs, viewport: { width: 1280, height: 800 } });
    const page = ctx.pages()[0] || await ctx.newPage();
    await page.addInitScript((tok) => sessionStorage.setItem('agentfleet.token', tok), w.operator);
    await page.goto(w.url + '/ui/fleet');
    await page.waitForFunction(() => performance.getEntriesByName('fleet-rendered').length > 0, null, { timeout: 60000 });
    const t = await page.evaluate(() => ({
      fcp: (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime,
      rendered: performance.getEntriesByName('fleet-rendered')[0].startTime,
      api: (performance.getEntriesByType('resource').find((e) => e.name.includes('/api/agents?')) || {}).duration,
      rows: document.querySelectorAll('table.fleet tbody tr').length,
      count: document.querySelector('[data-testid=fleet-count]').textContent,
    }));
    console.log(`run ${r + 1}: first contentful paint ${t.fcp.toFixed(0)} ms, fleet table painted ${t.rendered.toFixed(0)} ms, GET /api/agents ${t.api.toFixed(0)} ms (${t.rows} rows, "${t.count}"); load ${la()}`);
    fcp.push(t.fcp); rendered.push(t.rendered); apiMs.push(t.api);
    await ctx.close();
    rmSync(profile, { recursive: true, force: true });
  }
  console.log(`RESULT agents=${AGENTS} runs=${RUNS} median: first contentful paint ${median(fcp).toFixed(0)} ms, fleet table painted ${median(rendered).toFixed(0)} ms, GET /api/agents ${median(apiMs).toFixed(0)} ms; max fleet table ${Math.max(...rendered).toFixed(0)} ms`);
} finally {
  for (const p of sims) p.kill('SIGINT');
  await Promise.all(sims.map((p) => new Promise((r) => (p.exitCode !== null ? r() : p.on('exit', r)))));
  await w.down();
}
