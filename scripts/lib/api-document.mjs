/**
 * What the API document generators (scripts/generate-asyncapi.mjs, scripts/generate-openapi.mjs)
 * share: reading sources and builds, JSDoc as Markdown, JSON Schema components, and writing or
 * checking the committed YAML.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as prettier from 'prettier';
import ts from 'typescript';
import YAML from 'yaml';

/** The repository root: the generators' paths and messages are relative to it. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Where the component schemas are: the prefix of every `$ref` to one. */
export const SCHEMAS = '#/components/schemas/';

/** A reference to a component schema. */
export function schemaRef(name) {
  return { $ref: `${SCHEMAS}${name}` };
}

/** `mutation-message` or `mutationMessage` as `MutationMessage`, for component and message names. */
export function pascalCase(text) {
  return text.replace(/(^|[^A-Za-z0-9])([A-Za-z0-9])/g, (_, __, char) => char.toUpperCase());
}

// ---------------------------------------------------------------------------------------------
// Sources and builds
// ---------------------------------------------------------------------------------------------

/** The files under a folder whose names end with `suffix`, specs left out, in a stable order. */
export function filesUnder(dir, suffix) {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) => {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) return filesUnder(full, suffix);
      return entry.name.endsWith(suffix) && !entry.name.endsWith(`.spec${suffix}`) ? [full] : [];
    })
    .sort();
}

/** What is generated comes from dist and descriptions from src: a stale build would mix two versions. */
export function warnIfBuildIsStale(sourceDir, buildDir) {
  const stale = filesUnder(sourceDir, '.ts').find((file) => {
    const built = path.join(buildDir, path.relative(sourceDir, file)).replace(/\.ts$/, '.js');
    return !existsSync(built) || statSync(file).mtimeMs > statSync(built).mtimeMs;
  });
  if (stale) {
    console.warn(
      `warning: ${path.relative(ROOT, stale)} is newer than ${path.relative(ROOT, buildDir)}; ` +
        'run `npx tsc -b tsconfig.build.json` if it changed',
    );
  }
}

// ---------------------------------------------------------------------------------------------
// JSDoc
// ---------------------------------------------------------------------------------------------

/** The description of the JSDoc closest to a declaration, rendered for Markdown. */
export function jsDocOf(node) {
  const closest = ts.getJSDocCommentsAndTags(node).filter(ts.isJSDoc).at(-1);
  const text = closest && ts.getTextOfJSDocComment(closest.comment);
  return text ? cleanDescription(text) : undefined;
}

/** Renders JSDoc for Markdown: inline `{@link X}` as code, wrapped lines joined, indented blocks kept. */
export function cleanDescription(text) {
  return text
    .replace(/\s*\{@link\s+([^}\s]+)\s*\}\s*/g, ' `$1` ')
    .replace(/ +([.,;:)])/g, '$1')
    .replace(/(?<!\n)\n(?!\n| {2})/g, ' ')
    .replace(/(\S)[^\S\n]{2,}/g, '$1 ')
    .trim();
}

// ---------------------------------------------------------------------------------------------
// Schemas
// ---------------------------------------------------------------------------------------------

/** Follows property names through the wrappers zod emits (arrays, unions, intersections). */
export function findProperty(schema, [name, ...rest]) {
  if (!schema || typeof schema !== 'object') return undefined;
  const own = schema.properties?.[name];
  if (own) return rest.length === 0 ? own : findProperty(own, rest);
  const nested = [schema.items, ...(schema.anyOf ?? []), ...(schema.allOf ?? []), ...(schema.oneOf ?? [])];
  for (const candidate of nested) {
    const found = findProperty(candidate, [name, ...rest]);
    if (found) return found;
  }
  return undefined;
}

/** The definitions ts-json-schema-generator makes, as components: `$ref`s into them, JSDoc rendered for Markdown. */
export function componentsFromDefinitions(definitions) {
  return JSON.parse(JSON.stringify(definitions).replaceAll('#/definitions/', SCHEMAS), (key, value) =>
    key === 'description' && typeof value === 'string' ? cleanDescription(value) : value,
  );
}

/** Drops the component schemas nothing refers to (but those in `keep`), and sorts the rest by name. */
export function pruneUnusedSchemas(document, keep = []) {
  const { schemas } = document.components;
  const used = new Set();
  const pending = [...keep, ...referencedSchemas({ ...document, components: { ...document.components, schemas: {} } })];
  while (pending.length > 0) {
    const name = pending.pop();
    if (used.has(name)) continue;
    if (!schemas[name]) throw new Error(`schema ${name} is referenced but not generated`);
    used.add(name);
    pending.push(...referencedSchemas(schemas[name]));
  }
  return Object.fromEntries([...used].sort().map((name) => [name, schemas[name]]));
}

function referencedSchemas(value, found = []) {
  if (Array.isArray(value)) value.forEach((item) => referencedSchemas(item, found));
  else if (value && typeof value === 'object') {
    if (typeof value.$ref === 'string' && value.$ref.startsWith(SCHEMAS)) found.push(value.$ref.slice(SCHEMAS.length));
    Object.values(value).forEach((item) => referencedSchemas(item, found));
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// The committed file
// ---------------------------------------------------------------------------------------------

/** The document as committed: YAML in Prettier's layout, so `prettier --check` and `--check` agree. */
export async function formatYaml(document, { header, output }) {
  const yaml = `${header}\n${YAML.stringify(document, { aliasDuplicateObjects: false, lineWidth: 0 })}`;
  const options = (await prettier.resolveConfig(output)) ?? {};
  return prettier.format(yaml, { ...options, filepath: output });
}

/** Whether the module at `moduleUrl` is the script node was started with, rather than an import. */
export function isEntryPoint(moduleUrl) {
  return !!process.argv[1] && moduleUrl === pathToFileURL(process.argv[1]).href;
}

/**
 * A generator's command line: writes `output`, or with `--check` exits 1 when the committed file is
 * not what `generate` makes, saying `<output> is out of date <staleHint>`.
 */
export async function runGenerator({ output, generate, staleHint }) {
  try {
    await writeOrCheck({ output, generate, staleHint });
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  }
}

async function writeOrCheck({ output, generate, staleHint }) {
  const check = process.argv.includes('--check');
  const generated = await generate();
  const relative = path.relative(ROOT, output);
  if (!check) {
    await writeFile(output, generated);
    console.log(`wrote ${relative}`);
    return;
  }
  const committed = existsSync(output) ? readFileSync(output, 'utf8') : '';
  if (committed !== generated) {
    console.error(`${relative} is out of date ${staleHint}`);
    process.exitCode = 1;
    return;
  }
  console.log(`${relative} is up to date`);
}
