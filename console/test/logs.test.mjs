// Browser tests of the Logs page against the real bin/agent-server and a
// real bin/log-agent tailing files of this test (make build first; `make
// console-test` runs this with the other test files). Every wait is on a
// condition; screenshots go to artifacts/screenshots/.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { World, secret, shot, until } from './harness.mjs';

const w = new World();
const logAgent = 'web-1-log';
const reader = secret(); // a token that may read log collection, not change it
let page;
let logs, app;
const pageErrors = [];

async function newTab() {
  const p = await w.ctx.newPage();
  p.on('pageerror', (e) => pageErrors.push(e.stack || e.message));
  p.on('dialog', (d) => d.accept());
  return p;
}

async function signIn(p, token) {
  await p.goto(w.url + '/ui/#token=' + token);
  await p.locator('nav#nav').waitFor();
}

before(async () => {
  await w.up({ agents: false, extra: `api.token.logreader.secret = ${reader}\napi.token.logreader.scopes = logging:read,agents:read\n` });
  logs = join(w.dir, 'applogs');
  mkdirSync(logs, { recursive: true });
  app = join(logs, 'app.log');
  appendFileSync(app, Array.from({ length: 150 }, (_, i) => `line ${String(i + 1).padStart(3, '0')}`).join('\n') + '\nERROR disk full\n');
  const conf = w.write(`${logAgent}/agent.conf`, `basic.id = ${logAgent}
basic.server = 127.0.0.1:${w.port}
basic.token = ${w.enroll}
basic.log.target = stdout, file
basic.log.dir = ${join(w.dir, logAgent, 'logs')}
basic.monitor.enabled = false
collect.projects =
collect.data_dir = ${join(w.dir, logAgent, 'data')}
collect.poll = 20ms
collect.scan = 100ms
`);
  w.start('log-agent', ['run', '--conf', conf], logAgent);
  await until('the log-agent online', async () => (await w.get('/api/agents?online=true')).some((a) => a.id === logAgent));
  await w.browser();
  page = await newTab();
  await signIn(page, w.operator);
});

after(async () => {
  await w.down();
});

test('logs: create a project from the form; it is listed with its node running', async () => {
  await page.getByRole('link', { name: 'Logs', exact: true }).click();
  await page.waitForURL(/\/ui\/logs$/);
  await page.getByText('No project yet').waitFor();
  await page.getByRole('link', { name: 'New project…' }).click();
  await page.getByLabel('Name').fill('web');
  await page.getByRole('button', { name: 'Add ' + logAgent }).click();
  assert.equal(await page.getByLabel(/^Log-agents/).inputValue(), logAgent);
  await page.getByLabel('Files (absolute glob)').fill(join(logs, '*.log'));
  await page.getByLabel(/^Interval/).fill('1');
  await page.getByLabel('Read files from').selectOption('beginning');
  await shot(page, 'logs-new');
  await page.getByRole('button', { name: 'Create' }).click();
  await page.waitForURL(/\/ui\/logs\/web$/);
  const node = page.locator('table.nodes tr[data-node="' + logAgent + '"]');
  await until('the node running', async () => (await node.count()) && (await node.locator('.state').textContent()) === 'running', 60000);
  assert.equal(await node.locator('td.online').textContent(), 'online');
  const p = await w.get('/api/logging/task_info?pid=web');
  assert.equal(p.config.read_from, 'beginning');
  assert.equal(p.interval, 1);
  await page.getByRole('link', { name: '← projects' }).click();
  const row = page.locator('tr[data-project="web"]');
  await until('listed, running, 1/1', async () => (await row.count()) && (await row.getByTestId('nodes').textContent()) === '1/1 running');
  assert.equal(await row.locator('.state').textContent(), 'running');
  assert.ok((await row.textContent()).includes(join(logs, '*.log')));
  await shot(page, 'logs');
});

test('logs: stop and start from the project page', async () => {
  await page.goto(w.url + '/ui/logs/web');
  await page.getByRole('button', { name: 'Stop' }).click();
  await page.locator('h1 .state', { hasText: 'stopped' }).waitFor();
  await until('the node stopped', async () => (await page.locator('table.nodes .state').textContent()) === 'stopped', 60000);
  await page.getByRole('button', { name: 'Start' }).click();
  await page.locator('h1 .state', { hasText: 'running' }).waitFor();
  await until('the node running again', async () => (await page.locator('table.nodes .state').textContent()) === 'running', 60000);
  assert.equal((await w.get('/api/logging/task_info?pid=web')).running, true);
});

test('logs: query the stored lines with filters and the server\'s paging', async () => {
  await until('the 151 lines stored', async () => (await w.get('/api/logging/query?pid=web&limit=1000')).lines.length === 151, 60000);
  await page.goto(w.url + '/ui/logs/web?tab=query');
  const rows = page.getByTestId('query-lines').locator('tbody tr');
  const status = page.getByTestId('query-page');
  await until('the first page of 100', async () => (await status.textContent()) === 'page 1 · 100 lines');
  assert.match(await rows.first().locator('td.line').textContent(), /^line 001$/);
  await page.getByRole('button', { name: 'Next page' }).click();
  await until('the second page: 51 lines', async () => (await status.textContent()) === 'page 2 · 51 lines');
  assert.equal(await rows.first().locator('td.line').textContent(), 'line 101');
  assert.equal(await rows.last().locator('td.line').textContent(), 'ERROR disk full');
  assert.ok(await page.getByRole('button', { name: 'Next page' }).isDisabled());
  await page.getByRole('button', { name: 'Previous page' }).click();
  await until('back on page 1', async () => (await status.textContent()) === 'page 1 · 100 lines');
  await page.getByLabel('Grep').fill('^ERROR');
  await page.getByLabel('Host').fill(logAgent);
  await page.getByLabel('Source').fill(join(logs, '*.log'));
  await page.getByRole('button', { name: 'Search' }).click();
  await until('only the ERROR line', async () => (await status.textContent()) === 'page 1 · 1 line');
  assert.equal(await rows.first().locator('td.line').textContent(), 'ERROR disk full');
  assert.equal(await rows.first().locator('td').nth(1).textContent(), logAgent);
  assert.ok(page.url().includes('grep=%5EERROR'), 'the filters are in the URL');
  await shot(page, 'logs-query');
  await page.getByLabel('Until').fill('2000-01-01T00:00:00');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByText('No stored line matches.').waitFor();
});

test('logs: the live tail shows a line written to the file; pause holds lines back; clear empties', async () => {
  await page.goto(w.url + '/ui/logs/web?tab=tail');
  const status = page.getByTestId('tail-status');
  const box = page.getByTestId('tail-lines');
  await until('subscribed', async () => (await status.textContent()) === 'live');
  appendFileSync(app, 'tail me 1\n');
  await until('the line live', async () => (await box.textContent()).includes(`${logAgent} tail me 1\n`), 60000);
  await page.getByRole('button', { name: 'Pause' }).click();
  appendFileSync(app, 'tail me 2\n');
  await page.getByRole('button', { name: 'Resume (1 new)' }).waitFor({ timeout: 60000 });
  assert.ok(!(await box.textContent()).includes('tail me 2'), 'held back while paused');
  await page.getByRole('button', { name: /^Resume/ }).click();
  await until('shown after resume', async () => (await box.textContent()).includes(`${logAgent} tail me 2\n`));
  await shot(page, 'logs-tail');
  await page.getByRole('button', { name: 'Clear' }).click();
  assert.equal(await box.textContent(), '');
  // A filter: a line that does not match does not come.
  await page.getByLabel('Grep').fill('^wanted');
  await page.getByRole('button', { name: 'Follow' }).click();
  await until('subscribed again', async () => (await status.textContent()) === 'live');
  appendFileSync(app, 'unwanted\nwanted line\n');
  await until('the matching line', async () => (await box.textContent()) === `${logAgent} wanted line\n`, 60000);
  // The token went in a header only: the server log has no trace of it.
  assert.ok(!w.serverLog().includes(w.operator));
});

test('logs: edit a project (the form is filled from it), then remove it', async () => {
  const before = (await w.get('/api/logging/task_info?pid=web')).version;
  await page.goto(w.url + '/ui/logs/web');
  await page.getByRole('link', { name: 'Edit…' }).click();
  await page.waitForURL(/\/ui\/logs\/web\/edit$/);
  assert.equal(await page.getByLabel('Files (absolute glob)').inputValue(), join(logs, '*.log'));
  await page.getByLabel(/^Exclude/).fill('DEBUG');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.waitForURL(/\/ui\/logs\/web$/);
  await page.locator('dd', { hasText: 'DEBUG' }).waitFor();
  const p = await w.get('/api/logging/task_info?pid=web');
  assert.equal(p.exclude, 'DEBUG');
  assert.equal(p.version, before + 1);
  assert.equal(p.running, true, 'replacing keeps the running state');
  // A bad value: the server's 400 names the parameter.
  await page.getByRole('link', { name: 'Edit…' }).click();
  await page.getByLabel(/^Exclude/).fill('(');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByRole('alert').filter({ hasText: 'invalid parameter exclude' }).waitFor();
  await page.goto(w.url + '/ui/logs/web');
  await page.getByRole('button', { name: 'Remove' }).click();
  await page.waitForURL(/\/ui\/logs$/);
  await page.getByText('No project yet').waitFor();
  assert.equal((await w.api('/api/logging/task_info?pid=web')).status, 404);
});

test('logs: a read-only token sees the pages and no write control; its forged writes get 403', async () => {
  const r = await w.api('/api/logging/config', { method: 'POST', body: { pid: 'ro', type: 'logtail', ids: [logAgent], dir: join(logs, '*.log') } });
  assert.equal(r.status, 200, r.text);
  const p = await newTab();
  await signIn(p, reader);
  await p.getByRole('link', { name: 'Logs', exact: true }).click();
  await p.locator('tr[data-project="ro"]').waitFor();
  assert.equal(await p.getByRole('link', { name: 'New project…' }).count(), 0);
  await p.goto(w.url + '/ui/logs/ro');
  await p.locator('table.nodes').waitFor();
  for (const name of ['Start', 'Stop', 'Remove']) assert.equal(await p.getByRole('button', { name }).count(), 0, name);
  assert.equal(await p.getByRole('link', { name: 'Edit…' }).count(), 0, 'edit');
  await p.getByRole('link', { name: 'Query' }).click();
  await p.getByTestId('query-page').waitFor();
  await shot(p, 'logs-read-only');
  const codes = await p.evaluate(async () => {
    const h = { Authorization: 'Bearer ' + sessionStorage.getItem('agentfleet.token'), 'Content-Type': 'application/json' };
    const out = [];
    for (const [path, body] of [['/api/logging/stop', { pid: 'ro' }], ['/api/logging/remove', { pid: 'ro' }],
      ['/api/logging/config', { pid: 'x', type: 'logtail', ids: ['a'], dir: '/x' }]]) {
      out.push((await fetch(path, { method: 'POST', headers: h, body: JSON.stringify(body) })).status);
    }
    return out;
  });
  assert.deepEqual(codes, [403, 403, 403]);
  assert.equal((await w.get('/api/logging/task_info?pid=ro')).running, true);
  await p.close();
});

test('logs: no page error in any of the above', () => {
  assert.deepEqual(pageErrors, []);
});
