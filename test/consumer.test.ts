// The package as another team adopts it: `npm pack`, install the tarball into a scratch service
// (strict TypeScript, NodeNext) next to that service's own graphile-worker, once on 0.17.3 and
// once on 0.18, type-check it, and run it: it merges taskList/crontab into its own runOnce() and
// run(), computes days and reads them back as Decimal. The npm registry must be reachable (npm's
// cache makes repeated runs mostly offline: --prefer-offline).
import t from 'tap';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { databaseUrl, serverUrl } from './helpers/db.js';
import { cleanEnv, withoutNodeOptions } from './helpers/env.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'); // the repo's TypeScript 7
const typesNode = (JSON.parse(readFileSync(path.join(root, 'node_modules/@types/node/package.json'), 'utf8')) as { version: string }).version;
// What each scratch service asks npm for (the peer range's two minor lines).
const GRAPHILE_WORKER_VERSIONS = ['0.17.3', '^0.18.0'];

interface Run { code: number | null; stdout: string; stderr: string }

function sh(cmd: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(...withoutNodeOptions(cmd, args), { cwd: options.cwd, env: options.env ?? cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += String(d)));
    child.stderr.on('data', (d) => (stderr += String(d)));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const npm = (args: string[], cwd: string) =>
  sh('npm', [...args, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=warn'], { cwd });

async function emptyDatabase(t: { teardown(fn: () => unknown): void }, suffix: string): Promise<string> {
  const name = `pt_test_${Date.now().toString(36)}_${suffix}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  await admin.end();
  t.teardown(async () => {
    const a = postgres(serverUrl, { max: 1, onnotice: () => {} });
    await a.unsafe(`drop database if exists "${name}" with (force)`);
    await a.end();
  });
  return databaseUrl(name);
}

const work = mkdtempSync(path.join(tmpdir(), 'pt-consumer-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

/**
 * `npm pack` from a copy of the checkout (prepack rebuilds dist/ from scratch; in the checkout it
 * would race the other test files that run the repo's dist/ at the same time).
 */
async function packCopy(): Promise<string> {
  const src = path.join(work, 'portfolio-timeseries');
  const skip = new Set(['node_modules', 'dist', '.git', '.tap', 'results']);
  cpSync(root, src, { recursive: true, filter: (p) => !skip.has(path.basename(p)) });
  symlinkSync(path.join(root, 'node_modules'), path.join(src, 'node_modules'), 'dir');
  const r = await sh('npm', ['pack', '--pack-destination', work, '--loglevel=warn'], { cwd: src });
  if (r.code !== 0) throw new Error(`npm pack failed: ${r.stderr}`);
  const tgz = readdirSync(work).find((f) => f.endsWith('.tgz'));
  if (!tgz) throw new Error('npm pack wrote no tarball');
  return path.join(work, tgz);
}

/** A scratch service on graphile-worker `version`, with the tarball installed. */
async function installConsumer(tarball: string, version: string): Promise<{ dir: string; install: Run }> {
  const dir = path.join(work, `consumer-${version}`);
  mkdirSync(path.join(dir, 'src'), { recursive: true });
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({
    name: `scratch-consumer-${version.replace(/\W/g, '-')}`, private: true, type: 'module',
    dependencies: { 'graphile-worker': version, 'portfolio-timeseries': `file:${tarball}` },
    devDependencies: { '@types/node': typesNode },
  }, null, 2));
  cpSync(path.join(root, 'test/consumer/tsconfig.json'), path.join(dir, 'tsconfig.json'));
  cpSync(path.join(root, 'test/consumer/main.ts'), path.join(dir, 'src', 'main.ts'));
  return { dir, install: await npm(['install'], dir) };
}

let tarball: string;
try {
  tarball = await packCopy();
} catch (error) {
  rmSync(work, { recursive: true, force: true }); // t.teardown does not run when the file fails here
  throw error;
}
// Both installs at once; npm's cache is shared and safe for concurrent use.
const consumers = new Map(GRAPHILE_WORKER_VERSIONS.map((v) => [v, installConsumer(tarball, v)] as const));

t.test('packed tarball: contents and package.json', async (t) => {
  const listing = await sh('tar', ['-tzf', tarball], { cwd: work });
  const files = listing.stdout.split('\n').filter(Boolean).map((f) => f.replace(/^package\//, ''));
  t.ok(files.includes('dist/index.js') && files.includes('dist/index.d.ts'), 'ships dist with types');
  t.ok(files.some((f) => f.startsWith('migrations/committed/')) && files.includes('.gmrc'), 'ships the migrations and .gmrc');
  t.same(files.filter((f) => f.endsWith('.map')), [], 'no source maps (they would point at unshipped src/)');
  t.same(files.filter((f) => /^(src|test|scripts|bench)\//.test(f)), [], 'no sources, tests or scripts');
  await sh('tar', ['-xzf', tarball, 'package/package.json'], { cwd: work });
  const pkg = JSON.parse(readFileSync(path.join(work, 'package/package.json'), 'utf8')) as PackageJson;
  t.notOk(pkg.private, 'not private');
  t.notOk(pkg.scripts?.prepare, 'no prepare script (consumers would be asked to run it on install)');
  t.equal(pkg.type, 'module', 'ESM');
  t.notOk(pkg.dependencies?.['graphile-worker'], 'graphile-worker is not a regular dependency');
  t.equal(pkg.peerDependencies?.['graphile-worker'], '^0.17.3 || ^0.18.0', 'graphile-worker is a peer');
  t.ok(pkg.exports?.['.']?.types, 'exports carry types');
  t.equal(pkg.engines?.node, '^20.19.0 || >=22.12.0', 'engines: where both import and require() work');
});

interface PackageJson {
  private?: boolean;
  type?: string;
  scripts?: Record<string, string>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  exports?: Record<string, { types?: string }>;
  engines?: { node?: string };
}

for (const version of GRAPHILE_WORKER_VERSIONS) {
  t.test(`a service on graphile-worker ${version}`, async (t) => {
    const { dir, install } = await consumers.get(version)!;
    t.equal(install.code, 0, `npm install (stderr: ${install.stderr})`);
    t.notMatch(install.stderr, /ERESOLVE|peer dep|install script/i, 'no peer conflict, no install scripts');
    const installed = JSON.parse(readFileSync(path.join(dir, 'node_modules/graphile-worker/package.json'), 'utf8')) as { version: string };
    t.ok(installed.version === version.replace('^', '') || (version.startsWith('^0.18') && installed.version.startsWith('0.18.')),
      `the service keeps its own graphile-worker (${installed.version})`);
    t.notOk(existsSync(path.join(dir, 'node_modules/portfolio-timeseries/node_modules/graphile-worker')), 'and there is only one copy');

    const check = await sh(process.execPath, [tsc, '--noEmit', '-p', 'tsconfig.json'], { cwd: dir });
    t.equal(check.code, 0, `tsc --noEmit: ${check.stdout}${check.stderr}`);
    const build = await sh(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: dir });
    t.equal(build.code, 0, `tsc: ${build.stdout}${build.stderr}`);

    const url = await emptyDatabase(t, `gw${version.replace(/\W/g, '')}`);
    const run = await sh(process.execPath, ['build/main.js'], { cwd: dir, env: cleanEnv({ DATABASE_URL: url }) });
    t.equal(run.code, 0, `the service ran (stderr: ${run.stderr})`);
    const out = JSON.parse(run.stdout) as { allDecimal: boolean; rows: unknown[]; myJobsRun: number; warnings: string[]; migrationLogged: boolean };
    t.ok(out.allDecimal, 'money comes back as Decimal');
    t.same(out.rows, [
      // 10 SAP at 200 EUR = 2,000 EUR = 2,500 USD (the snapshot's base value)
      { date: '2025-01-02', bod: '0.00', eod: '2500.00', eodCashflow: '0.00', fees: '0.00' },
      // a 12.50 EUR fee at 1.25: 15.63 USD of EOD outflow and 15.63 of fees
      { date: '2025-01-03', bod: '2500.00', eod: '2625.00', eodCashflow: '-15.63', fees: '15.63' },
    ], 'both days computed, through runOnce() and run()');
    t.ok(out.myJobsRun >= 1, "the service's own task ran beside the engine's");
    t.same(out.warnings, [], 'no warnings or errors logged');
    t.ok(out.migrationLogged, "migrate() reported through the service's logger");
    t.equal(run.stderr, '', 'the library wrote nothing to stderr on its own');

    const cjs = await sh(process.execPath, ['-e',
      "const pt = require('portfolio-timeseries'); console.log(Object.keys(pt.taskList).length, typeof pt.migrate, new pt.Decimal('0.1').plus('0.2').toString())"],
      { cwd: dir });
    t.equal(cjs.stdout.trim(), '3 function 0.3', `require() works too (Node >= 20.19): ${cjs.stderr}`);
  });
}

t.test("a DBA runs graphile-migrate from the service's root with the package's gmrc.cjs", async (t) => {
  const { dir, install } = await consumers.get('^0.18.0')!;
  t.equal(install.code, 0, 'installed');
  const bin = (name: string) => path.join(dir, 'node_modules', '.bin', name);
  const url = await emptyDatabase(t, 'dba');
  const migrate = () => sh(bin('graphile-migrate'), ['migrate', '--config', 'node_modules/portfolio-timeseries/gmrc.cjs'],
    { cwd: dir, env: cleanEnv({ DATABASE_URL: url }) });
  const engineObjects = async () => {
    const s = postgres(url, { max: 1, onnotice: () => {} });
    try {
      const [r] = await s<{ n: number }[]>`
        select (select count(*) from pg_namespace where nspname = 'portfolio_timeseries_engine')
             + (select count(*) from pg_class where relnamespace = 'public'::regnamespace)::int as n`;
      return r!.n;
    } finally {
      await s.end();
    }
  };

  // Without graphile-worker's schema: refused before anything of the engine exists.
  const refused = await migrate();
  t.not(refused.code, 0, 'graphile-migrate migrate fails');
  t.match(refused.stdout + refused.stderr, /needs graphile-worker's schema \(graphile_worker\.add_job\)/, 'and says what is missing');
  t.match(refused.stdout + refused.stderr, /graphile-worker --schema-only/, 'and how to install it');
  t.equal(Number(await engineObjects()), 0, 'no table, no engine schema was created');

  // With it, the same command applies the committed migrations; the service then runs on them.
  const schema = await sh(bin('graphile-worker'), ['--schema-only', '-c', url], { cwd: dir, env: cleanEnv() });
  t.equal(schema.code, 0, `graphile-worker --schema-only: ${schema.stderr}`);
  const applied = await migrate();
  t.equal(applied.code, 0, `graphile-migrate migrate: ${applied.stdout}${applied.stderr}`);
  t.match(applied.stdout + applied.stderr, /000001-/, 'the initial migration ran');
  const run = await sh(process.execPath, ['build/main.js'], { cwd: dir, env: cleanEnv({ DATABASE_URL: url }) });
  t.equal(run.code, 0, `the service ran on the DBA's migration (stderr: ${run.stderr})`);
  const out = JSON.parse(run.stdout) as { rows: { date: string; eod: string }[]; migrationLogged: boolean };
  t.same(out.rows.map((r) => [r.date, r.eod]), [['2025-01-02', '2500.00'], ['2025-01-03', '2625.00']], 'and computed its days');
  t.notOk(out.migrationLogged, "migrate() in the service found nothing left to apply");
});
