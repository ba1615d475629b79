// Runs the tap suite and ends with the plain `N passed, N failed` line CI counts: one per
// top-level test (t.test) of every test file, read from the TAP stream tap prints.
//
// Counting rules: a skipped or todo test is neither passed nor failed (they are reported on the
// line before); a file that ran no test at all, or that failed without a failing test (it crashed
// or exited non-zero after its tests), counts as one failure; tap's own exit status must agree.
// The TAP stream is read from stdout, not from .tap/, so two runs in one checkout do not collide.
//
// The server is TEST_DATABASE_URL or the documented default (never DATABASE_URL: it may point at
// a real database); the first line says which. Without PT_TEMPLATE_DB the migrated template is
// built for this run only (pt_tpl_<run id>, PT_TEST_RUN_ID tells the test files) and dropped at
// the end, so two runs on one server do not collide; with PT_TEMPLATE_DB that template is used
// (built first when it does not exist) and kept.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { newRunId, serverSource, serverUrl } from '../test/helpers/db.js';
import { buildTemplate, dropStaleTestDatabases, dropTemplate } from './test-setup.js';
import { describeUrl } from '../src/db.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tapBin = path.join(root, 'node_modules', '.bin', 'tap');

interface FileResult {
  name: string;
  passed: number;
  failed: number;
  skipped: number;
  todo: number;
  fileFailed: boolean;
}

export function countTap(stream: string): { files: FileResult[] } {
  const files: FileResult[] = [];
  let current: FileResult | null = null;
  for (const line of stream.split('\n')) {
    const subtest = /^# Subtest: (.*)$/.exec(line);
    if (subtest) {
      current = { name: subtest[1]!, passed: 0, failed: 0, skipped: 0, todo: 0, fileFailed: false };
      files.push(current);
      continue;
    }
    // A file's own result line (column 0) closes it.
    const fileLine = /^(not )?ok \d+ - (.*?)(?: # (?:time=.*))?$/.exec(line);
    if (fileLine && current && fileLine[2]!.startsWith(current.name)) {
      current.fileFailed = fileLine[1] !== undefined;
      current = null;
      continue;
    }
    // Top-level tests of a file are indented by 4 spaces.
    const test = /^ {4}(not )?ok \d+ - .*?(?: # (SKIP|TODO)\b.*)?$/i.exec(line);
    if (test && current) {
      const directive = test[2]?.toUpperCase();
      if (directive === 'SKIP') current.skipped++;
      else if (directive === 'TODO') current.todo++;
      else if (test[1]) current.failed++;
      else current.passed++;
    }
  }
  return { files };
}

async function templateExists(name: string): Promise<boolean> {
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    const rows = await admin`select 1 from pg_database where datname = ${name}`;
    return rows.length > 0;
  } finally {
    await admin.end();
  }
}

async function main(): Promise<number> {
  console.log(`# tests use PostgreSQL at ${describeUrl(serverUrl)}: ${serverSource}`);
  let owned: string | undefined;
  const given = process.env.PT_TEMPLATE_DB;
  if (given) {
    if (!(await templateExists(given))) {
      console.log(`# building template ${given} (PT_TEMPLATE_DB)`);
      await buildTemplate(given);
    }
    console.log(`# template ${given} (PT_TEMPLATE_DB, kept)`);
  } else {
    const runId = newRunId();
    process.env.PT_TEST_RUN_ID = runId;
    owned = `pt_tpl_${runId}`;
    await dropStaleTestDatabases();
    await buildTemplate(owned);
    console.log(`# template ${owned} (this run's; dropped at the end)`);
  }
  try {
    return await runTap();
  } finally {
    if (owned) await dropTemplate(owned).catch((e: unknown) => console.log(`# could not drop ${owned}: ${(e as Error).message}`));
  }
}

async function runTap(): Promise<number> {
  // Ctrl-C reaches tap too (same process group); this process waits for it, then drops the template.
  const child = spawn(tapBin, ['--reporter=tap', ...process.argv.slice(2)], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => { child.kill('SIGTERM'); });
  let stream = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    stream += chunk;
    process.stdout.write(chunk);
  });
  const status = await new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? 1)));
  const { files } = countTap(stream);
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  let todo = 0;
  const notes: string[] = [];
  for (const f of files) {
    passed += f.passed;
    failed += f.failed;
    skipped += f.skipped;
    todo += f.todo;
    if (f.passed + f.failed === 0) {
      failed++;
      notes.push(`${f.name}: ran no test`);
    } else if (f.fileFailed && f.failed === 0) {
      failed++;
      notes.push(`${f.name}: failed outside its tests`);
    }
  }
  if (files.length === 0) {
    failed++;
    notes.push('no test file ran');
  }
  if (status !== 0 && failed === 0) {
    failed++;
    notes.push(`tap exited with ${status}`);
  }
  for (const n of notes) console.log(`# ${n}`);
  console.log(`# ${files.length} files; ${skipped} skipped, ${todo} todo (neither passed nor failed)`);
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  process.exitCode = await main();
}
