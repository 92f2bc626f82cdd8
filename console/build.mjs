// Builds the console into agent-server/internal/console/dist (embedded in
// the binary and committed; docs/console.md says why).
//
//   node build.mjs           build
//   node build.mjs --check   build into a temporary folder and fail when it
//                            differs from the committed dist (CI)
//   node build.mjs --sizes   build and print each file's size, raw and gzip
//
// The output depends only on the sources and the exact package versions of
// package-lock.json: esbuild is deterministic, file names carry no hashes
// (the server revalidates by ETag), and no time or path goes into a file.
import * as esbuild from 'esbuild';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const committed = join(here, '..', 'agent-server', 'internal', 'console', 'dist');
const check = process.argv.includes('--check');
const sizes = process.argv.includes('--sizes');
const out = check ? mkdtempSync(join(tmpdir(), 'console-dist-')) : committed;

// BUDGET is the gzip budget of everything /ui/ serves (issue #20); the API
// reference renderer under /docs/ is counted on its own (docs/console.md).
const BUDGET = 400_000;

async function build() {
  rmSync(join(out, 'ui'), { recursive: true, force: true });
  rmSync(join(out, 'docs'), { recursive: true, force: true });
  mkdirSync(join(out, 'ui'), { recursive: true });
  mkdirSync(join(out, 'docs'), { recursive: true });

  const common = {
    bundle: true,
    minify: true,
    format: 'esm',
    target: ['chrome110', 'firefox110', 'safari16'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    legalComments: 'eof',
    charset: 'utf8',
    logLevel: 'warning',
    absWorkingDir: here,
    sourcemap: false,
  };
  // The app: one entry, the heavy parts (terminal, charts) split into
  // chunks loaded by the pages that need them.
  const app = await esbuild.build({
    ...common,
    entryPoints: { app: 'src/main.jsx' },
    outdir: join(out, 'ui'),
    splitting: true,
    chunkNames: '[name]-[hash]',
    loader: { '.svg': 'text' },
    metafile: true,
  });
  // The chunks app.js imports statically are fetched with it, not after it
  // (one round trip less before the first page renders).
  const entry = Object.entries(app.metafile.outputs).find(([, o]) => o.entryPoint === 'src/main.jsx');
  const preload = entry[1].imports.filter((i) => i.kind === 'import-statement')
    .map((i) => `<link rel="modulepreload" href="/ui/${i.path.split('/').pop()}">`).join('\n');
  // The API reference page's own script (Swagger UI is copied as shipped).
  await esbuild.build({ ...common, entryPoints: { docs: 'src/docs.js' }, outdir: join(out, 'docs') });

  writeFileSync(join(out, 'ui', 'index.html'), readFileSync(join(here, 'src', 'index.html'), 'utf8').replace('<!--preload-->', preload));
  cpSync(join(here, 'src', 'favicon.svg'), join(out, 'ui', 'favicon.svg'));
  cpSync(join(here, 'src', 'docs.html'), join(out, 'docs', 'index.html'));
  cpSync(join(here, 'src', 'docs.css'), join(out, 'docs', 'docs.css'));
  cpSync(join(here, 'src', 'favicon.svg'), join(out, 'docs', 'favicon.svg'));
  const sw = join(here, 'node_modules', 'swagger-ui-dist');
  for (const f of ['swagger-ui-bundle.js', 'swagger-ui.css']) cpSync(join(sw, f), join(out, 'docs', f));
  // Apache-2.0: the licence and notice travel with the redistributed files.
  cpSync(join(sw, 'LICENSE'), join(out, 'docs', 'swagger-ui-LICENSE.txt'));
  cpSync(join(sw, 'NOTICE'), join(out, 'docs', 'swagger-ui-NOTICE.txt'));
}

function walk(dir) {
  const files = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) files.push(...walk(p));
    else files.push(p);
  }
  return files;
}

function report(root) {
  let ui = 0, docs = 0;
  const rows = [];
  for (const p of walk(root)) {
    const body = readFileSync(p);
    const gz = gzipSync(body, { level: 9 }).length;
    const rel = relative(root, p);
    if (rel.startsWith('ui/')) ui += gz; else docs += gz;
    rows.push(`${rel.padEnd(42)} ${String(body.length).padStart(9)} ${String(gz).padStart(9)}`);
  }
  return { ui, docs, rows };
}

await build();
const { ui, docs, rows } = report(out);
if (sizes) {
  console.log(`${'file'.padEnd(42)} ${'bytes'.padStart(9)} ${'gzip'.padStart(9)}`);
  for (const r of rows) console.log(r);
  console.log(`/ui/ total gzip ${ui} bytes (budget ${BUDGET}); /docs/ (API reference, Swagger UI) gzip ${docs} bytes`);
}
if (ui > BUDGET) {
  console.error(`console: /ui/ assets are ${ui} bytes gzipped, over the budget of ${BUDGET}`);
  process.exit(1);
}
if (check) {
  const digest = (root) => {
    const m = new Map();
    if (!existsSync(root)) return m;
    for (const p of walk(root)) m.set(relative(root, p), createHash('sha256').update(readFileSync(p)).digest('hex'));
    return m;
  };
  const want = digest(out), have = digest(committed);
  const diff = [];
  for (const [f, h] of want) if (have.get(f) !== h) diff.push(have.has(f) ? `changed: ${f}` : `missing: ${f}`);
  for (const f of have.keys()) if (!want.has(f)) diff.push(`extra: ${f}`);
  rmSync(out, { recursive: true, force: true });
  if (diff.length) {
    console.error('console: the committed build (agent-server/internal/console/dist) does not match its sources:');
    for (const d of diff) console.error('  ' + d);
    console.error('run `make console` and commit the result');
    process.exit(1);
  }
  console.log('console: committed build matches the sources');
}
