// Browser tests of the Install and Upgrade pages against the real
// bin/agent-server and real exec-agents (make build first; `make
// console-test` runs this with the other test files): a tar.gz of the
// repository unpacked by the exec-agent with its action log on the task's
// page, a deb whose installer waits on the test so that the log is seen
// arriving live, the server's 400s shown on the field they name, the
// password kept nowhere, a real self-update of an exec-agent to a binary
// built and signed here and an unsigned one refused, and the scopes.
// Every wait is on a condition; screenshots go to artifacts/screenshots/.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { World, bin, newTab as openTab, root, secret, shot, signIn as openConsole, until } from './harness.mjs';

const w = new World();
const installer = secret(); // exec:run without agents:upgrade
const dpkgRoot = join(w.dir, 'dpkg-root');
const gate = join(w.dir, 'postinst-gate');
let page;
const pageErrors = [];
const newTab = () => openTab(w.ctx, pageErrors);
const signIn = (p, token) => openConsole(p, w.url, token);

// run runs a program to its end, its output in the error when it fails.
function run(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (b) => { out += b; });
    p.stderr.on('data', (b) => { out += b; });
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}\n${out}`))));
  });
}

// put stores a file in the server's package repository.
async function put(name, path) {
  const res = await fetch(`${w.url}/api/packages/${encodeURIComponent(name)}`, {
    method: 'PUT', headers: { Authorization: 'Bearer ' + w.operator }, body: readFileSync(path),
  });
  assert.ok(res.ok, `upload ${name}: ${res.status} ${await res.text()}`);
}

// file writes a file under the test's directory (dirs made) with mode.
function file(rel, text, mode = 0o644) {
  const p = w.write(rel, text);
  chmodSync(p, mode);
  return p;
}

const online = async (id) => (await w.get('/api/agents?online=true&size=100')).find((a) => a.id === id);
const hostOf = (p, id) => p.locator(`li.host[data-agent="${id}"]`);
// actionRow is the row of a host's action log with that action (and name).
const actionRow = (p, id, action, name = '') => hostOf(p, id).locator('[data-testid=actions] tbody tr')
  .filter({ has: p.locator('td:first-child', { hasText: new RegExp(`^${action}$`) }) }).filter({ hasText: name });

before(async () => {
  for (const d of ['info', 'updates', 'triggers']) mkdirSync(join(dpkgRoot, 'var/lib/dpkg', d), { recursive: true });
  writeFileSync(join(dpkgRoot, 'var/lib/dpkg/status'), '');
  await w.up({
    extra: `api.token.installer.secret = ${installer}\napi.token.installer.scopes = agents:read, tasks:read, exec:run, packages:read\n`,
    execConf: `install.dpkg_args = --root=${dpkgRoot} --force-script-chrootless --force-not-root --log=/dev/null\n`,
  });
  await w.browser();
  page = await newTab();
  await signIn(page, w.operator);
});

after(async () => {
  await w.down();
});

test('install: a tar.gz of the repository on the exec-agent, the server\'s 400 on the field it names, then the action log', async () => {
  file('src/app/bin/run.sh', '#!/bin/sh\necho run\n', 0o755);
  file('src/app/README', 'readme of the console test\n');
  const tgz = join(w.dir, 'app-1.0.tar.gz');
  await run('tar', ['-czf', tgz, '-C', join(w.dir, 'src'), 'app']);
  await put('app-1.0.tar.gz', tgz);
  const dir = join(w.dir, 'installed');

  await page.getByRole('link', { name: 'Install', exact: true }).click();
  await page.waitForURL(/\/ui\/install$/);
  await page.getByLabel('Agent ids', { exact: true }).check();
  await page.locator('textarea[name=ids]').fill(w.execId);
  await page.locator('select[name=uri]').selectOption('app-1.0.tar.gz');
  await page.getByTestId('package-info').filter({ hasText: 'sha256 ' + createHash('sha256').update(readFileSync(tgz)).digest('hex').slice(0, 16) }).waitFor();
  // No directory: the server refuses, naming dir; the page marks it.
  await page.getByRole('button', { name: 'Install', exact: true }).click();
  await page.getByRole('alert').filter({ hasText: 'invalid parameter dir: required to unpack a tar.gz archive' }).waitFor();
  await page.locator('input[name=dir][aria-invalid="true"]').waitFor();
  assert.match(page.url(), /\/ui\/install$/, 'still on the form');
  await shot(page, 'install-error');

  await page.locator('input[name=dir]').fill(dir);
  await page.locator('input[name=timeout]').fill('120');
  await page.getByRole('button', { name: 'Install', exact: true }).click();
  await page.waitForURL(/\/ui\/tasks\/[^/]+$/);
  const id = decodeURIComponent(page.url().split('/').pop());
  await page.getByRole('heading', { name: new RegExp(`^Install ${id}`) }).waitFor();
  await actionRow(page, w.execId, 'done', id).filter({ hasText: 'ok' }).waitFor({ timeout: 60000 });
  for (const [action, name] of [['download', 'app-1.0.tar.gz'], ['install', 'app-1.0.tar.gz'], ['file', join(dir, 'app/bin/run.sh')], ['file', join(dir, 'app/README')]]) {
    assert.equal(await actionRow(page, w.execId, action, name).count(), 1, `${action} ${name} shown`);
    assert.equal(await actionRow(page, w.execId, action, name).locator('td.ok').count(), 1, `${action} ${name} ok`);
  }
  await until('the task done on the page', async () => (await page.locator('h1 .state').textContent()) === 'done');
  await hostOf(page, w.execId).locator('.state-ok').waitFor();
  await page.locator('dl.facts').filter({ hasText: 'app-1.0.tar.gz (repository)' }).filter({ hasText: 'into ' + dir }).waitFor();
  await shot(page, 'install-task');

  // What the page shows is the server's log, and the files are there.
  const st = await w.get('/api/install/status?task_id=' + encodeURIComponent(id));
  assert.equal(st.done, true);
  assert.equal(await hostOf(page, w.execId).locator('[data-testid=actions] tbody tr').count(), st.actions.length);
  assert.equal(readFileSync(join(dir, 'app/README'), 'utf8'), 'readme of the console test\n');
  assert.equal(readFileSync(join(dir, 'app/bin/run.sh'), 'utf8'), '#!/bin/sh\necho run\n');
});

test('install: a deb whose installer waits, its action log arriving live on the task page', async () => {
  const pkg = join(w.dir, 'deb', 'console-live');
  file('deb/console-live/DEBIAN/control', 'Package: console-live\nVersion: 1.0\nArchitecture: all\nMaintainer: tests <t@example.com>\nDescription: console test\n');
  file('deb/console-live/DEBIAN/postinst', `#!/bin/sh\nwhile [ ! -f ${gate} ]; do sleep 0.1; done\n`, 0o755);
  file('deb/console-live/opt/console-live/hello.txt', 'hello from the deb\n');
  await run('dpkg-deb', ['--root-owner-group', '--build', pkg, pkg + '.deb']);
  await put('console-live_1.0_all.deb', pkg + '.deb');

  await page.goto(w.url + '/ui/install?ids=' + w.execId);
  await page.locator('select[name=uri]').selectOption('console-live_1.0_all.deb');
  await page.getByRole('button', { name: 'Install', exact: true }).click();
  await page.waitForURL(/\/ui\/tasks\/[^/]+$/);
  const id = decodeURIComponent(page.url().split('/').pop());
  // The download is logged while dpkg still runs the postinst.
  await actionRow(page, w.execId, 'download', 'console-live_1.0_all.deb').locator('td.ok').waitFor({ timeout: 60000 });
  await page.getByRole('status').filter({ hasText: 'live' }).waitFor();
  assert.equal(await actionRow(page, w.execId, 'done').count(), 0, 'no done action while the installer runs');
  assert.equal(await page.locator('h1 .state').textContent(), 'running');
  await shot(page, 'install-live');
  writeFileSync(gate, '');
  await actionRow(page, w.execId, 'done', id).locator('td.ok').waitFor({ timeout: 60000 });
  await actionRow(page, w.execId, 'install', 'console-live_1.0_all.deb').locator('td.ok').waitFor();
  await until('the task done on the page', async () => (await page.locator('h1 .state').textContent()) === 'done');
  assert.equal(readFileSync(join(dpkgRoot, 'opt/console-live/hello.txt'), 'utf8'), 'hello from the deb\n');
});

test('install: a URL the server refuses; a password sent once and kept nowhere', async () => {
  await page.goto(w.url + '/ui/install?ids=' + w.execId);
  await page.getByLabel('A download link', { exact: true }).check();
  await page.locator('input[name=url]').fill('ftp://files.example.com/app.tar.gz');
  await page.locator('input[name=dir]').fill('/tmp/x');
  await page.getByRole('button', { name: 'Install', exact: true }).click();
  await page.getByRole('alert').filter({ hasText: 'invalid parameter url: scheme "ftp": want http or https' }).waitFor();
  await page.locator('input[name=url][aria-invalid="true"]').waitFor();
  assert.equal(await page.locator('input[name=dir]').getAttribute('aria-invalid'), null, 'only the field named');

  const password = 'console-secret-' + secret();
  await page.locator('input[name=url]').fill('http://127.0.0.1:9/app.tar.gz');
  await page.locator('select[name=auth]').selectOption('sudo');
  await page.locator('input[name=user]').fill('-rf');
  await page.locator('input[name=pass]').fill(password);
  assert.equal(await page.locator('input[name=pass]').getAttribute('type'), 'password');
  await page.getByRole('button', { name: 'Install', exact: true }).click();
  await page.getByRole('alert').filter({ hasText: 'invalid parameter user: "-rf" is not a user name' }).waitFor();
  await page.locator('input[name=user][aria-invalid="true"]').waitFor();
  const kept = await page.evaluate(() => JSON.stringify([{ ...sessionStorage }, { ...localStorage }, location.href, document.cookie]));
  assert.ok(!kept.includes(password), 'the password is not in the storage, the URL or a cookie');
  const audit = await w.api('/api/audit?size=100');
  assert.equal(audit.status, 200);
  assert.match(audit.text, /install/, 'the refused install audited');
  assert.ok(!audit.text.includes(password), 'not in the audit log');
  assert.ok(!w.serverLog().includes(password), 'not in the server\'s log');
});

test('upgrade: an exec-agent upgraded to a binary built and signed here; an unsigned one refused; a bad request', async () => {
  // v1 is bin/exec-agent copied (the agent replaces its own file); v2 the
  // same sources with another version, signed with a key made here.
  const v2 = '9.9.9-console';
  const dir = join(w.dir, 'up-1');
  mkdirSync(dir, { recursive: true });
  const exe = join(dir, 'exec-agent');
  copyFileSync(join(bin, 'exec-agent'), exe);
  chmodSync(exe, 0o755);
  const v2bin = join(w.dir, 'exec-agent-v2');
  await run(process.env.GO || 'go', ['build', '-trimpath', '-ldflags', `-s -w -X github.com/agentfleet/libagent/buildinfo.Version=${v2}`, '-o', v2bin, '.'], {
    cwd: join(root, 'exec-agent'), env: { ...process.env, CGO_ENABLED: '0' },
  });
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const pub = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');
  const digest = createHash('sha256').update(readFileSync(v2bin)).digest();
  const sig = sign(null, Buffer.concat([Buffer.from('agentfleet release v1\0'), digest]), privateKey).toString('base64');
  await put('exec-agent-' + v2, v2bin);
  w.start('exec-agent', ['run', '--conf', w.agentConf('up-1', `basic.labels = role=upgrade\nbasic.upgrade.public_key = ${pub}\nbasic.upgrade.restart = exec\n`)], 'up-1', exe);
  const v1 = (await until('up-1 online', () => online('up-1'))).version;
  assert.notEqual(v1, v2);

  await page.getByRole('link', { name: 'Upgrade agents', exact: true }).click();
  await page.waitForURL(/\/ui\/upgrade$/);
  // Nothing chosen: the server's 400 names the package.
  await page.locator('input[name=labels]').fill('role=upgrade');
  await until('selector preview', async () => (await page.getByTestId('matches').textContent()) === '1 exec-agents match, 1 online');
  await page.getByRole('button', { name: 'Upgrade', exact: true }).click();
  await page.getByRole('alert').filter({ hasText: 'package or version: give one' }).waitFor();
  await page.locator('select[name=package][aria-invalid="true"]').waitFor();
  await page.getByLabel('A release version', { exact: true }).check();
  await page.locator('input[name=version]').fill('1 2');
  await page.getByRole('button', { name: 'Upgrade', exact: true }).click();
  await page.getByRole('alert').filter({ hasText: 'version: "1 2" is not a version' }).waitFor();
  await page.locator('input[name=version][aria-invalid="true"]').waitFor();

  await page.getByLabel('A package of the repository', { exact: true }).check();
  await page.locator('select[name=package]').selectOption('exec-agent-' + v2);
  await page.locator('textarea[name=signature]').fill(sig);
  await page.locator('input[name=deadline]').fill('60');
  await page.locator('input[name=stay]').fill('2');
  await shot(page, 'upgrade');
  await page.getByRole('button', { name: 'Upgrade', exact: true }).click();
  await page.waitForURL(/\/ui\/tasks\/[^/]+$/);
  const id = decodeURIComponent(page.url().split('/').pop());
  await page.getByRole('heading', { name: new RegExp(`^Upgrade ${id}`) }).waitFor();
  await hostOf(page, 'up-1').getByTestId('host-msg').filter({ hasText: `upgraded from ${v1} to ${v2} (exec-agent-${v2})` }).waitFor({ timeout: 120000 });
  await until('the upgrade task done on the page', async () => (await page.locator('h1 .state').textContent()) === 'done');
  await shot(page, 'upgrade-task');
  assert.equal((await online('up-1')).version, v2);
  assert.ok(existsSync(exe + '.prev'), 'the previous binary kept');

  // The same binary without its signature: the agent refuses it.
  await page.goto(w.url + '/ui/upgrade?ids=up-1');
  await page.locator('select[name=package]').selectOption('exec-agent-' + v2);
  await page.getByRole('button', { name: 'Upgrade', exact: true }).click();
  await page.waitForURL(/\/ui\/tasks\/[^/]+$/);
  await hostOf(page, 'up-1').getByTestId('host-msg').filter({ hasText: 'nothing swapped' }).filter({ hasText: 'binary is not signed' }).waitFor({ timeout: 60000 });
  await until('the task failed on the page', async () => (await page.locator('h1 .state').textContent()) === 'failed');
  await hostOf(page, 'up-1').locator('.state-failed').waitFor();
  assert.equal((await online('up-1')).version, v2, 'still the version it had');
});

test('install and upgrade: what a token may not do it is not offered, and its forged calls get 403', async () => {
  const p = await newTab();
  await signIn(p, installer);
  await p.getByRole('link', { name: 'Install', exact: true }).waitFor();
  assert.equal(await p.getByRole('link', { name: 'Upgrade agents' }).count(), 0, 'no Upgrade in the navigation');
  await p.goto(w.url + '/ui/upgrade');
  await p.getByText('This token may not upgrade agents (scope agents:upgrade).').waitFor();
  assert.equal(await p.getByRole('button', { name: 'Upgrade', exact: true }).count(), 0);
  const forged = await p.evaluate(async () => {
    const h = { Authorization: 'Bearer ' + sessionStorage.getItem('agentfleet.token'), 'Content-Type': 'application/json' };
    return (await fetch('/api/agents/upgrade', { method: 'POST', headers: h, body: JSON.stringify({ selector: { ids: ['up-1'] }, agent_type: 'exec-agent', version: '1.0.0' }) })).status;
  });
  assert.equal(forged, 403);
  await p.close();

  const ro = await newTab();
  await signIn(ro, w.viewer);
  for (const name of ['Install', 'Upgrade agents']) assert.equal(await ro.getByRole('link', { name, exact: true }).count(), 0, name);
  await ro.goto(w.url + '/ui/install');
  await ro.getByText('This token may not install software on hosts (scope exec:run).').waitFor();
  await ro.goto(w.url + '/ui/packages');
  await ro.locator('tr', { hasText: 'app-1.0.tar.gz' }).waitFor();
  assert.equal(await ro.getByRole('link', { name: 'Install app-1.0.tar.gz' }).count(), 0, 'no Install link on the packages page');
  const codes = await ro.evaluate(async (exec) => {
    const h = { Authorization: 'Bearer ' + sessionStorage.getItem('agentfleet.token'), 'Content-Type': 'application/json' };
    return [
      (await fetch('/api/install/run', { method: 'POST', headers: h, body: JSON.stringify({ id: exec, uri: 'app-1.0.tar.gz', dir: '/tmp/x' }) })).status,
      (await fetch('/api/agents/upgrade', { method: 'POST', headers: h, body: JSON.stringify({ selector: { ids: ['up-1'] }, agent_type: 'exec-agent', version: '1.0.0' }) })).status,
    ];
  }, w.execId);
  assert.deepEqual(codes, [403, 403]);
  await ro.close();
});

test('install: the packages page links a package to the install form', async () => {
  await page.goto(w.url + '/ui/packages');
  await page.getByRole('link', { name: 'Install app-1.0.tar.gz' }).click();
  await page.waitForURL(/\/ui\/install\?uri=app-1.0.tar.gz$/);
  await until('the package chosen', async () => (await page.locator('select[name=uri]').inputValue()) === 'app-1.0.tar.gz');
});

test('install: no page error in any of the above', () => {
  assert.deepEqual(pageErrors, []);
});
