// Headless Chromium (Debian's `chromium`) for the report: the DOM after scripts ran, and a
// screenshot. Nothing is fetched: networking features are switched off, and the page has no links.
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/** The chromium binary on PATH, or undefined. */
export function findChromium(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    for (const name of ['chromium', 'chromium-browser']) {
      const candidate = path.join(dir, name);
      try {
        if (statSync(candidate).isFile()) return candidate;
      } catch {
        // not here
      }
    }
  }
  return undefined;
}

async function headless(chromium: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const profile = await mkdtemp(path.join(tmpdir(), 'pt-chromium-'));
  try {
    return await new Promise((resolve, reject) => {
      const child = spawn(chromium, [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--no-first-run', '--no-default-browser-check',
        '--hide-scrollbars', `--user-data-dir=${profile}`, ...args,
      ], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += String(d)));
      child.stderr.on('data', (d) => (stderr += String(d)));
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  } finally {
    await rm(profile, { recursive: true, force: true });
  }
}

/** The page's DOM after its scripts ran. */
export async function dumpDom(chromium: string, htmlFile: string): Promise<string> {
  const r = await headless(chromium, ['--dump-dom', pathToFileURL(htmlFile).href]);
  if (r.code !== 0) throw new Error(`chromium --dump-dom exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** A PNG of the top `height` pixels of the page at `width`. */
export async function screenshot(chromium: string, htmlFile: string, pngFile: string, width = 1280, height = 1400): Promise<void> {
  const r = await headless(chromium, [`--screenshot=${pngFile}`, `--window-size=${width},${height}`, pathToFileURL(htmlFile).href]);
  if (r.code !== 0) throw new Error(`chromium --screenshot exited ${r.code}: ${r.stderr}`);
}
