// Browser tests of the Packages page against the real bin/agent-server
// (make build first; `make console-test` runs this with the other test
// files): upload with progress, the stored sha256, download, delete, the
// server's refusals shown, and a read-only token with no write control.
// Every wait is on a condition; screenshots go to artifacts/screenshots/.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { World, newTab as openTab, shot, signIn as openConsole } from './harness.mjs';

const w = new World();
let page;
const pageErrors = [];
const newTab = () => openTab(w.ctx, pageErrors);
const signIn = (p, token) => openConsole(p, w.url, token);

const sha256 = (path) => createHash('sha256').update(readFileSync(path)).digest('hex');

before(async () => {
  await w.up({ agents: false });
  await w.browser();
  page = await newTab();
  await signIn(page, w.operator);
});

after(async () => {
  await w.down();
});

test('packages: upload a 20 MB package, its sha256 stored and shown; download it back', async () => {
  const src = join(w.dir, 'site_1.0.tar.gz');
  const body = randomBytes(20 << 20);
  body[0] = 0x1f; body[1] = 0x8b; // gzip magic: the type the name says
  writeFileSync(src, body);
  const want = sha256(src);
  await page.getByRole('link', { name: 'Packages', exact: true }).click();
  await page.waitForURL(/\/ui\/packages$/);
  await page.getByText('No packages yet.').waitFor();
  await page.getByLabel('Package', { exact: true }).setInputFiles(src);
  assert.equal(await page.getByLabel('Name', { exact: true }).inputValue(), 'site_1.0.tar.gz');
  await page.getByRole('button', { name: 'Upload', exact: true }).click();
  await page.getByRole('status').filter({ hasText: 'Stored site_1.0.tar.gz (tar.gz, 20 MiB), sha256 ' + want }).waitFor({ timeout: 120000 });
  const row = page.locator('tr', { hasText: 'site_1.0.tar.gz' });
  await row.waitFor();
  assert.equal(await row.locator('code').getAttribute('title'), want);
  const list = await w.get('/api/packages');
  assert.equal(list.packages.length, 1);
  assert.equal(list.packages[0].sha256, want);
  await shot(page, 'packages');
  const [dl] = await Promise.all([
    page.waitForEvent('download', { timeout: 120000 }),
    page.getByRole('button', { name: 'Download site_1.0.tar.gz' }).click(),
  ]);
  const got = join(w.dir, 'downloaded.tgz');
  await dl.saveAs(got);
  assert.equal(sha256(got), want, 'the file the browser saved');
});

test('packages: the server refuses a wrong type and a second upload under the name; replace works', async () => {
  const bad = join(w.dir, 'bad.deb');
  writeFileSync(bad, 'PK\x03\x04not a deb');
  await page.getByLabel('Package', { exact: true }).setInputFiles(bad);
  await page.getByRole('button', { name: 'Upload', exact: true }).click();
  await page.getByRole('alert').filter({ hasText: 'invalid parameter body: the content is not a deb file' }).waitFor();

  const v2 = join(w.dir, 'v2.tar.gz');
  writeFileSync(v2, Buffer.concat([Buffer.from([0x1f, 0x8b]), randomBytes(1000)]));
  await page.getByLabel('Package', { exact: true }).setInputFiles(v2);
  await page.getByLabel('Name', { exact: true }).fill('site_1.0.tar.gz');
  await page.getByRole('button', { name: 'Upload', exact: true }).click();
  await page.getByRole('alert').filter({ hasText: 'package "site_1.0.tar.gz" exists' }).waitFor();
  await page.getByLabel('Package', { exact: true }).setInputFiles(v2);
  await page.getByLabel('Name', { exact: true }).fill('site_1.0.tar.gz');
  await page.getByLabel('replace', { exact: true }).check();
  await page.getByRole('button', { name: 'Upload', exact: true }).click();
  await page.getByRole('status').filter({ hasText: 'Stored site_1.0.tar.gz (tar.gz, 1002 B)' }).waitFor();
  assert.equal((await w.get('/api/packages/site_1.0.tar.gz')).sha256, sha256(v2));
});

test('packages: a read-only token lists and downloads, sees no write control; its forged writes get 403', async () => {
  const p = await newTab();
  await signIn(p, w.viewer);
  await p.getByRole('link', { name: 'Packages', exact: true }).click();
  await p.locator('tr', { hasText: 'site_1.0.tar.gz' }).waitFor();
  assert.equal(await p.getByRole('form', { name: 'Upload a package' }).count(), 0);
  assert.equal(await p.getByRole('button', { name: 'Delete site_1.0.tar.gz' }).count(), 0);
  assert.equal(await p.getByRole('button', { name: 'Download site_1.0.tar.gz' }).count(), 1);
  await shot(p, 'packages-read-only');
  const codes = await p.evaluate(async () => {
    const h = { Authorization: 'Bearer ' + sessionStorage.getItem('agentfleet.token') };
    return [
      (await fetch('/api/packages/x.tar.gz', { method: 'PUT', headers: h, body: '\x1f\x8b' })).status,
      (await fetch('/api/packages/site_1.0.tar.gz', { method: 'DELETE', headers: h })).status,
    ];
  });
  assert.deepEqual(codes, [403, 403]);
  await p.close();
});

test('packages: delete', async () => {
  await page.getByRole('button', { name: 'Delete site_1.0.tar.gz' }).click();
  await page.getByRole('status').filter({ hasText: 'Deleted site_1.0.tar.gz.' }).waitFor();
  await page.getByText('No packages yet.').waitFor();
  assert.equal((await w.api('/api/packages/site_1.0.tar.gz')).status, 404);
});

test('packages: no page error in any of the above', () => {
  assert.deepEqual(pageErrors, []);
});
