/**
 * Browser builds, after `tsc -b`: the client SDK's bundles (to report their size and to prove
 * they need nothing from Node) and the demo app served by `npm start`.
 */
import { gzipSync } from 'node:zlib';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const quiet = process.argv.includes('--quiet');

const common = {
  absWorkingDir: ROOT,
  bundle: true,
  format: 'esm',
  platform: 'browser', // a Node built-in anywhere in the graph fails the build
  target: 'es2022',
  minify: true,
  sourcemap: true,
  logLevel: 'warning',
};

/** The SDK as an application bundles it: minified, tree-shaken, React left to the application. */
const sdkBundles = [
  { name: '@syncline/client', entry: 'libs/client/dist/index.js', out: 'libs/client/dist/browser/client.min.js' },
  {
    name: '@syncline/client/react',
    entry: 'libs/client/dist/react/index.js',
    out: 'libs/client/dist/browser/react.min.js',
    external: ['react'],
  },
];

async function sizeOf(file) {
  const code = await readFile(file);
  return { minified: code.length, gzipped: gzipSync(code, { level: 9 }).length };
}

const kb = (bytes) => `${(bytes / 1024).toFixed(1)} kB`;

process.on('unhandledRejection', () => process.exit(1)); // esbuild has printed what failed

const results = [];
for (const bundle of sdkBundles) {
  await build({ ...common, entryPoints: [bundle.entry], outfile: bundle.out, external: bundle.external ?? [] });
  results.push({ name: bundle.name, ...(await sizeOf(bundle.out)) });
}

await build({
  ...common,
  entryPoints: ['demo/src/main.tsx'],
  outfile: 'demo/dist/app.js',
  jsx: 'automatic',
  define: { 'process.env.NODE_ENV': '"production"' },
});
results.push({ name: 'demo app (with React)', ...(await sizeOf('demo/dist/app.js')) });

if (!quiet) {
  const width = Math.max(...results.map((result) => result.name.length));
  for (const result of results) {
    console.log(
      `browser bundle  ${result.name.padEnd(width)}  ${kb(result.minified).padStart(9)} minified  ${kb(result.gzipped).padStart(8)} gzipped`,
    );
  }
}
