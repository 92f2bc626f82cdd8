// Browser tests of the console against the real bin/agent-server with a
// real exec-agent and metrics-agent (make build first; `make console-test`
// runs this). Every wait is on a condition; screenshots of each page go to
// artifacts/screenshots/.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { World, shot, until } from './harness.mjs';

const w = new World();
let page; // the operator's tab
const pageErrors = [];

function sha256(path) {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path).on('data', (b) => h.update(b)).on('end', () => resolve(h.digest('hex'))).on('error', reject);
  });
}

async function newTab() {
  const p = await w.ctx.newPage();
  p.on('pageerror', (e) => pageErrors.push(e.stack || e.message));
  p.on('dialog', (d) => d.accept());
  return p;
}

async function signIn(p, token) {
  await p.goto(w.url + '/ui/');
  await p.getByLabel('API token').fill(token);
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.waitForSelector('table.fleet tbody tr');
}

before(async () => {
  await w.up();
  await w.browser();
  page = await newTab();
});

after(async () => {
  await w.down();
});

test('sign in: the form keeps the token in the tab only; a reload keeps the session; sign out ends it', async () => {
  await page.goto(w.url + '/ui/');
  await page.getByLabel('API token').fill('not-a-token-of-this-server');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: '401' }).waitFor();
  await shot(page, 'signin');
  await signIn(page, w.operator);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('agentfleet.token')), w.operator);
  assert.ok(!page.url().includes(w.operator));
  await page.reload();
  await page.waitForSelector('table.fleet tbody tr');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('API token').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('agentfleet.token')), null);
});

test('sign-in link: the token in the fragment signs in and leaves the address bar; the server never sees it', async () => {
  await page.goto(w.url + '/ui/#token=' + w.operator);
  await page.waitForSelector('table.fleet tbody tr');
  assert.equal(new URL(page.url()).hash, '');
  assert.ok(!page.url().includes(w.operator));
  assert.ok(!w.serverLog().includes(w.operator), 'the token is in the server log');
  await shot(page, 'fleet');
});

test('fleet: filter by text and by label selector, sort, live state', async () => {
  const count = () => page.getByTestId('fleet-count').textContent();
  await page.goto(w.url + '/ui/fleet');
  await until('both agents listed', async () => (await count()).includes('of 2'));
  await page.getByLabel('Search').fill(w.execId);
  await until('text filter applied', async () => (await count()).includes('of 1') && (await page.locator('table.fleet tbody tr').count()) === 1);
  assert.ok(page.url().includes('q=' + w.execId), 'the filter is in the URL (survives a reload)');
  await page.getByLabel('Search').fill('');
  await page.getByLabel('Labels').fill('role=db');
  await until('label filter: nothing', async () => (await count()) === 'no agent matches');
  await page.getByLabel('Labels').fill('role=web,console=test');
  await until('label filter: both', async () => (await count()).includes('of 2'));
  const first = () => page.locator('table.fleet tbody tr td:nth-child(2)').first().textContent();
  await page.getByRole('button', { name: 'Type' }).click();
  await until('sorted by type ascending', async () => page.url().includes('sort=type') && (await first()) === w.execId);
  await page.getByRole('button', { name: 'Type' }).click();
  await until('sorted by type descending', async () => page.url().includes('sort=-type') && (await first()) === w.metricsId);
  assert.equal(await page.locator('table.fleet .online').count(), 2);
});

test('fleet: select an agent and edit its labels', async () => {
  await page.goto(w.url + '/ui/fleet');
  await page.getByLabel('Select ' + w.execId).check();
  await page.getByRole('button', { name: 'Edit labels…' }).click();
  await page.getByLabel('Set').fill('tier=gold');
  await page.getByRole('button', { name: 'Apply' }).last().click();
  await until('label saved', async () => (await w.get('/api/agents/' + w.execId)).labels.tier === 'gold');
  await page.locator('tr', { hasText: w.execId }).locator('.chip', { hasText: 'tier=gold' }).waitFor();
});

test('host: facts, usage and the last hour charted from the in-memory history', async () => {
  await page.goto(w.url + '/ui/hosts/' + w.metricsId);
  const charts = page.getByTestId('charts');
  await until('charts with two samples or more', async () => {
    if (!(await charts.count())) { await page.reload(); return false; }
    const n = Number(await charts.locator('[data-samples]').first().getAttribute('data-samples'));
    return n >= 2;
  }, 60000);
  assert.equal(await charts.getAttribute('data-source'), 'memory');
  assert.ok(await charts.locator('canvas').count() >= 4, 'uPlot drew four charts');
  await page.getByText('Kernel').waitFor();
  await shot(page, 'host');
  await page.getByRole('link', { name: 'Processes' }).click();
  await until('process list', async () => (await page.locator('td.cmd').count()) > 0, 60000);
  await shot(page, 'host-processes');
  await page.getByRole('link', { name: 'Agent logs' }).click();
  await page.locator('table tbody tr').first().waitFor();
  await page.getByRole('link', { name: 'Connections' }).click();
  await page.getByText('sockets').waitFor();
});

test('host: processes sorted by a column, and one killed from the list', async () => {
  // The victim reads its stdin, a pipe of this process: it ends with the
  // test process however that ends, and the finally below ends it when the
  // test fails, so no run leaves it behind.
  const tag = 'console-test-victim-' + randomBytes(4).toString('hex');
  const victim = spawn('sh', ['-c', `read _; : ${tag}`], { stdio: ['pipe', 'ignore', 'ignore'] });
  let signal = null;
  victim.on('exit', (code, sig) => { signal = sig || `exit ${code}`; });
  try {
    await new Promise((resolve, reject) => { victim.once('spawn', resolve); victim.once('error', reject); });
    const pid = String(victim.pid);
    const row = page.locator('table.procs tbody tr', { has: page.locator('td:first-child', { hasText: new RegExp(`^${pid}$`) }) });
    await page.goto(w.url + '/ui/hosts/' + w.metricsId + '?tab=processes');
    await page.getByLabel('Filter').fill(pid);
    // A refresh asks the host for a new list (at most one a second), until
    // one has the victim with its command line.
    let asked = 0;
    await until('the process listed with its command', async () => {
      if ((await row.count()) === 1 && (await row.locator('td.cmd').textContent()).includes(tag)) return true;
      if (Date.now() - asked > 1000) {
        asked = Date.now();
        await page.getByRole('button', { name: 'Refresh from the host' }).click();
      }
      return false;
    }, 60000);
    await page.getByLabel('Filter').fill('');
    await page.getByRole('button', { name: 'PID' }).click();
    await until('sorted by PID, descending', async () => {
      if ((await page.locator('table.procs th', { hasText: 'PID' }).getAttribute('aria-sort')) !== 'descending') return false;
      const pids = (await page.locator('table.procs tbody tr td:first-child').allTextContents()).map(Number);
      return pids.length > 1 && pids.every((p, i) => i === 0 || pids[i - 1] > p);
    });
    await page.getByLabel('Filter').fill(pid);
    await page.getByRole('button', { name: `Terminate process ${pid}`, exact: true }).click();
    await until('the victim ended', async () => signal !== null);
    assert.equal(signal, 'SIGTERM');
    await page.getByRole('status').filter({ hasText: `kill ${pid}: exit 0` }).waitFor();
  } finally {
    if (victim.exitCode === null && victim.signalCode === null) victim.kill('SIGKILL');
  }
});

test('terminal: type echo hi, read hi; UTF-8 both ways; the pty follows the window', async () => {
  await page.goto(w.url + '/ui/hosts/' + w.execId + '/terminal');
  await until('connected', async () => (await page.getByTestId('term-status').textContent()) === 'connected');
  await page.locator('.xterm').click();
  await page.keyboard.type('echo hi\n');
  await until('hi on a line of its own', async () => {
    const rows = await page.locator('.xterm-rows > div').allTextContents();
    return rows.some((r) => r.trim() === 'hi');
  });
  await shot(page, 'terminal');
  // UTF-8 both ways, and the pty follows the window's size.
  const rows = () => page.locator('.xterm-rows > div').allTextContents();
  await page.keyboard.type('echo "é→✓"\n');
  await until('UTF-8 echoed', async () => (await rows()).some((r) => r.trim() === 'é→✓'));
  const size = async () => {
    await page.keyboard.type('clear; stty size\n');
    let got = '';
    await until('stty size', async () => { got = (await rows()).map((r) => r.trim()).find((r) => /^\d+ \d+$/.test(r)) || ''; return got; });
    return got;
  };
  const before = await size();
  await page.setViewportSize({ width: 900, height: 600 });
  await until('the pty resized', async () => (await size()) !== before);
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.keyboard.type('exit\n');
  await until('exited', async () => (await page.getByTestId('term-status').textContent()) === 'exited');
});

test('run: a command on a label selector, output shown live, then the summary', async () => {
  const gate = join(w.dir, 'go-' + randomBytes(4).toString('hex'));
  await page.goto(w.url + '/ui/run');
  await page.getByLabel('Labels').fill('role=web');
  await until('selector preview', async () => (await page.getByTestId('matches').textContent()).includes('1 exec-agents match, 1 online'));
  await page.getByLabel('Command (run by sh -c)').fill(`echo tick1; while [ ! -f ${gate} ]; do sleep 0.1; done; echo tick2`);
  await page.getByLabel('Concurrency').fill('1');
  await shot(page, 'run');
  await page.getByRole('button', { name: 'Run' }).click();
  await page.waitForURL(/\/ui\/tasks\/[^/]+$/);
  const out = page.getByTestId('output').first();
  // tick1 arrives while the command still waits for the gate: live output.
  await until('tick1 live', async () => (await out.count()) && (await out.textContent()).includes('tick1'));
  assert.ok(!(await out.textContent()).includes('tick2'));
  assert.match(await page.getByTestId('summary').textContent(), /running 1/);
  writeFileSync(gate, '');
  await until('tick2 and the summary', async () => (await out.textContent()).includes('tick2') && /ok 1/.test(await page.getByTestId('summary').textContent()));
  await page.locator('h1 .state-done').waitFor();
  await shot(page, 'task');
});

test('run: re-run on the failed hosts', async () => {
  await page.goto(w.url + '/ui/run');
  await page.getByRole('radio', { name: 'Agent ids' }).check();
  await page.locator('textarea[name=ids]').fill(w.execId);
  await page.getByLabel('Command (run by sh -c)').fill('echo failing; exit 3');
  await page.getByRole('button', { name: 'Run' }).click();
  await page.waitForURL(/\/ui\/tasks\/[^/]+$/);
  const first = page.url();
  await page.getByRole('button', { name: /Re-run on the 1 failed host/ }).click();
  await until('a new task', async () => page.url() !== first && /\/ui\/tasks\//.test(page.url()));
  await page.locator('li.host.state-failed').waitFor();
});

test('tasks: cancel a running task', async () => {
  const r = await w.api('/api/tasks', { method: 'POST', body: { selector: { ids: [w.execId] }, cmd: 'sleep', args: ['300'] } });
  assert.equal(r.status, 200, r.text);
  const id = r.env.payload.id;
  await page.goto(w.url + '/ui/tasks');
  await page.getByRole('link', { name: id }).click();
  await page.locator('li.host.state-running').waitFor();
  await page.getByRole('button', { name: 'Cancel task' }).click();
  await page.locator('h1 .state-cancelled').waitFor({ timeout: 30000 });
  const t = await w.get('/api/tasks/' + id);
  assert.equal(t.state, 'cancelled');
  assert.match(t.agents[0].msg || '', /killed/);
  await page.goto(w.url + '/ui/tasks');
  await shot(page, 'tasks');
});

test('files: upload and download a 50 MB file, identical hash', async () => {
  const dir = join(w.dir, 'files');
  mkdirSync(dir, { recursive: true });
  const src = join(w.dir, 'big-50m.bin');
  writeFileSync(src, randomBytes(50 << 20));
  const want = await sha256(src);
  await page.goto(w.url + '/ui/hosts/' + w.execId + '/files?dir=' + encodeURIComponent(dir));
  await page.getByLabel(/Upload to/).setInputFiles(src);
  await page.getByRole('button', { name: 'Upload', exact: true }).click();
  await page.getByRole('status').filter({ hasText: 'Uploaded big-50m.bin' }).waitFor({ timeout: 120000 });
  assert.equal(await sha256(join(dir, 'big-50m.bin')), want, 'the file the agent wrote');
  await page.locator('tr', { hasText: 'big-50m.bin' }).waitFor();
  await shot(page, 'files');
  const [dl] = await Promise.all([
    page.waitForEvent('download', { timeout: 120000 }),
    page.getByRole('button', { name: 'Download big-50m.bin' }).click(),
  ]);
  const got = join(w.dir, 'downloaded.bin');
  await dl.saveAs(got);
  assert.equal(await sha256(got), want, 'the file the browser saved');
});

test('audit: filter by actor and action', async () => {
  await page.goto(w.url + '/ui/audit');
  await page.getByLabel('Actor').fill('ops');
  await page.getByLabel('Action').fill('PUT /api/agents/{id}/labels');
  await page.getByRole('button', { name: 'Filter' }).click();
  await until('only the label edit in the log', async () => page.url().includes('action=') &&
    (await page.locator('tbody tr').count()) >= 1 &&
    (await page.locator('tbody tr').first().textContent()).includes(w.execId) &&
    (await page.locator('tbody tr', { hasNotText: 'PUT /api/agents/{id}/labels' }).count()) === 0);
  await shot(page, 'audit');
});

// ustar writes a tar archive of small text files (the layout's archive).
function ustar(files) {
  const blocks = [];
  for (const [name, text] of Object.entries(files)) {
    const body = Buffer.from(text);
    const h = Buffer.alloc(512);
    h.write(name, 0);
    h.write('0000644\0', 100);
    h.write('0000000\0', 108);
    h.write('0000000\0', 116);
    h.write(body.length.toString(8).padStart(11, '0') + '\0', 124);
    h.write('00000000000\0', 136);
    h.write('        ', 148);
    h.write('0', 156);
    h.write('ustar\0' + '00', 257);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
    blocks.push(h, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

test('layouts: start one from an uploaded archive, follow its steps', async () => {
  const tar = join(w.dir, 'layout.tar');
  writeFileSync(tar, ustar({ 'main.yaml': "name: console\ntimeout: 60\ntasks:\n  - {name: hello, plugin: exec, cmd: 'echo layout-hello'}\n" }));
  await page.goto(w.url + '/ui/layouts/new');
  await page.getByLabel('Exec-agent ids').fill(w.execId);
  await page.getByLabel('Archive').setInputFiles(tar);
  await shot(page, 'layout-new');
  await page.getByRole('button', { name: 'Start' }).click();
  await page.waitForURL(/\/ui\/layouts\/[^/]+$/);
  await until('the step ran', async () => (await page.locator('pre.output').allTextContents()).some((t) => t.includes('layout-hello')));
  await page.locator('h1 .state').filter({ hasText: /done|ok|success/ }).waitFor();
  await shot(page, 'layout');
});

test('API reference: Swagger UI from the binary, try-it-out with the signed-in token', async () => {
  await page.goto(w.url + '/docs/');
  const op = page.locator('.opblock', { has: page.locator('.opblock-summary-path', { hasText: /^\/api\/info\/server$/ }) });
  await op.locator('.opblock-summary').click();
  await op.getByRole('button', { name: 'Try it out' }).click();
  await op.getByRole('button', { name: 'Execute' }).click();
  await op.locator('.responses-wrapper .live-responses-table .response-col_status', { hasText: '200' }).waitFor();
  assert.match(await op.locator('.live-responses-table .microlight').first().textContent(), /console-test/);
  await shot(page, 'api-reference');
});

test('phone width: the fleet is readable and the menu opens', async () => {
  const p = await newTab();
  await p.setViewportSize({ width: 390, height: 844 });
  await p.goto(w.url + '/ui/#token=' + w.operator);
  await p.waitForSelector('table.fleet tbody tr');
  await p.getByRole('button', { name: 'Menu' }).click();
  await p.getByRole('link', { name: 'Audit log' }).waitFor();
  await shot(p, 'fleet-phone');
  await p.close();
});

test('keyboard: the fleet is reachable with Tab from the page start', async () => {
  await page.goto(w.url + '/ui/fleet');
  await page.waitForSelector('table.fleet tbody tr');
  let reached = false;
  for (let i = 0; i < 40 && !reached; i++) {
    await page.keyboard.press('Tab');
    reached = await page.evaluate((id) => document.activeElement && document.activeElement.textContent === id, w.execId);
  }
  assert.ok(reached, 'the first agent link is reachable by keyboard');
  await page.keyboard.press('Enter');
  await page.waitForURL(new RegExp('/ui/hosts/' + w.execId));
});

test('read-only token: no write controls, and forged writes are refused', async () => {
  const doc = (await w.api('/api/openapi.json')).env;
  const whoami = !!doc.paths['/api/whoami'];
  const p = await newTab();
  await signIn(p, w.viewer);
  // The same calls the hidden controls would make, forged from the page.
  const forge = () => p.evaluate(async ([exec]) => {
    const h = { Authorization: 'Bearer ' + sessionStorage.getItem('agentfleet.token'), 'Content-Type': 'application/json' };
    const codes = [];
    for (const [method, path, body] of [
      ['PUT', `/api/agents/${exec}/labels`, { labels: { pwned: 'yes' } }],
      ['POST', '/api/tasks', { selector: { ids: [exec] }, cmd: 'touch', args: ['/tmp/pwned'] }],
      ['POST', `/api/exec/${exec}/run`, { cmd: 'true' }],
    ]) {
      const r = await fetch(path, { method, headers: h, body: JSON.stringify(body) });
      if (r.status === 403) dispatchEvent(new Event('agentfleet:forbidden')); // as the console's client does
      codes.push(r.status);
    }
    return codes;
  }, [w.execId]);
  if (!whoami) {
    // A server without GET /api/whoami: the console learns from the first
    // refused write that the token is read-only.
    console.log('# read-only test: this server has no /api/whoami; the console goes read-only at the first 403');
    assert.deepEqual(await forge(), [403, 403, 403]);
  }
  await p.getByTestId('read-only').waitFor();
  assert.equal(await p.getByRole('link', { name: 'Run' }).count(), 0, 'no Run in the navigation');
  await p.goto(w.url + '/ui/fleet');
  await p.waitForSelector('table.fleet tbody tr');
  assert.equal(await p.locator('table.fleet input[type=checkbox]').count(), 0, 'nothing to select for');
  await p.goto(w.url + '/ui/hosts/' + w.execId);
  await p.getByText(w.execId).first().waitFor();
  for (const name of ['Terminal', 'Run a command']) assert.equal(await p.getByRole('link', { name }).count(), 0, name);
  assert.equal(await p.getByRole('button', { name: /Edit the labels/ }).count(), 0, 'label edit');
  await p.goto(w.url + '/ui/hosts/' + w.metricsId + '?tab=processes');
  await p.locator('table.procs').waitFor();
  assert.equal(await p.getByRole('button', { name: /Terminate process/ }).count(), 0, 'process kill');
  await p.goto(w.url + '/ui/hosts/' + w.execId + '/files?dir=/');
  await p.locator('table.files').waitFor();
  assert.equal(await p.getByRole('button', { name: 'Upload', exact: true }).count(), 0, 'upload');
  await shot(p, 'read-only-files');
  assert.deepEqual(await forge(), [403, 403, 403]);
  assert.equal((await w.get('/api/agents/' + w.execId)).labels.pwned, undefined);
  await p.close();
});

test('no page error in any of the above', () => {
  assert.deepEqual(pageErrors, []);
  assert.ok(existsSync(w.dir));
});
