// Minifies tracker/script.js (the readable source) into tracker/script.min.js,
// which Headcount embeds with include_str! and serves at /js/script.js.
//
//   node tests/browser/build-tracker.mjs          write tracker/script.min.js
//   node tests/browser/build-tracker.mjs --check  exit 1 if it is stale
//
// The browser tests import minifyTracker() and fail when the committed file
// differs from what this produces, so the served script is always the source.
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { minify } from 'terser';

const root = new URL('../../', import.meta.url);
export const SOURCE = fileURLToPath(new URL('tracker/script.js', root));
export const MINIFIED = fileURLToPath(new URL('tracker/script.min.js', root));

const OPTIONS = {
  ecma: 2020,
  compress: { passes: 3, unsafe: true, unsafe_arrows: true, toplevel: true },
  mangle: { toplevel: true },
  format: { comments: false },
};

/** The minified tracker, exactly as tracker/script.min.js must hold it. */
export async function minifyTracker() {
  const { code } = await minify(await readFile(SOURCE, 'utf8'), OPTIONS);
  return code + '\n';
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const code = await minifyTracker();
  if (process.argv.includes('--check')) {
    const committed = await readFile(MINIFIED, 'utf8').catch(() => '');
    if (committed !== code) {
      console.error('tracker/script.min.js is stale: run scripts/build-tracker.sh');
      process.exit(1);
    }
  } else {
    await writeFile(MINIFIED, code);
  }
  console.log(`tracker: ${code.length} bytes, ${gzipSync(code, { level: 9 }).length} bytes gzipped`);
}
