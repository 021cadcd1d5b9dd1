import 'reflect-metadata';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RequestMethod, type ArgumentsHost } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants';
import { compileErrors, validate } from '@readme/openapi-parser';
import { ErrorCode, SynclineError } from '@syncline/contracts';
import type { Logger } from '@syncline/platform';
import YAML from 'yaml';
import { HttpErrorsFilter } from '../../apps/gateway/src/http/http-errors.filter.js';
import type { HttpResponse } from '../../apps/gateway/src/http/http-types.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DOCUMENT = path.join(ROOT, 'docs/openapi.yaml');
const GATEWAY_SRC = path.join(ROOT, 'apps/gateway/src');

/** The parts of an OpenAPI document these checks read. */
interface Schema {
  readonly $ref?: string;
  readonly allOf?: readonly Schema[];
  readonly properties?: Readonly<Record<string, Schema>>;
  readonly enum?: readonly unknown[];
}
interface Response {
  readonly headers?: Readonly<Record<string, unknown>>;
  readonly content?: Readonly<Record<string, { readonly schema?: Schema }>>;
}
interface Operation {
  readonly responses: Readonly<Record<string, Response>>;
}
interface OpenApiDocument {
  readonly openapi: string;
  readonly paths: Readonly<Record<string, Readonly<Record<string, Operation>>>>;
  readonly components: { readonly schemas: Readonly<Record<string, Schema>> };
}

/** docs/openapi.yaml is generated from the gateway's controllers; these checks keep the two from drifting apart. */
describe('docs/openapi.yaml', () => {
  let text: string;
  let document: OpenApiDocument;

  beforeAll(async () => {
    text = await readFile(DOCUMENT, 'utf8');
    document = YAML.parse(text) as OpenApiDocument;
  });

  it('is a valid OpenAPI 3.1 document', async () => {
    expect(document.openapi).toMatch(/^3\.1\./);
    // The validator dereferences what it is given: it gets a copy.
    const result = await validate(YAML.parse(text) as Parameters<typeof validate>[0]);
    expect(result.valid ? 'valid' : compileErrors(result)).toBe('valid');
    expect(result.warnings).toEqual([]);
  });

  it('describes every route the controllers declare, and no other', async () => {
    const documented = operationsOf(document).map(({ route }) => route);
    expect(documented.sort()).toEqual((await declaredRoutes()).sort());
  });

  it('lists every error code, with the codes of each error response under the status the error filter gives them', () => {
    expect(document.components.schemas['ErrorCode']?.enum).toEqual(Object.values(ErrorCode));
    const answers = errorResponsesOf(document);
    expect(answers.length).toBeGreaterThan(0);
    for (const { route, status, codes } of answers) {
      for (const code of codes) expect({ route, code, status: statusOf(code) }).toEqual({ route, code, status });
    }
  });

  it('uses only error codes that exist, wherever a JSON body carries one', () => {
    const known: readonly unknown[] = Object.values(ErrorCode);
    // The SSE stream's `error` events carry codes of their own, listed with the event in `x-sse-events`.
    const used = operationsOf(document).flatMap(({ operation }) =>
      Object.values(operation.responses).flatMap((response) => codesIn(response.content?.['application/json'])),
    );
    expect(used.length).toBeGreaterThan(0);
    expect(used.filter((code) => !known.includes(code))).toEqual([]);
  });

  it('sends Retry-After with the errors that carry a retry hint', () => {
    const hinted = errorResponsesOf(document).filter(({ codes }) =>
      codes.some((code) => code === ErrorCode.RATE_LIMITED || code === ErrorCode.UNAVAILABLE),
    );
    expect(hinted.length).toBeGreaterThan(0);
    for (const { route, status, response } of hinted) {
      expect({ route, status, headers: Object.keys(response.headers ?? {}) }).toEqual({
        route,
        status,
        headers: ['Retry-After'],
      });
    }
  });

  it('is what the generator makes from the code now', () => {
    const check = spawnSync(process.execPath, ['scripts/generate-openapi.mjs', '--check'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    // On failure the generator's own message says what to run.
    expect(check.status === 0 ? 'up to date' : check.stderr).toBe('up to date');
  });
});

/** "GET /api/v1/policies/{entityType}" for each route of each controller in the gateway's sources. */
async function declaredRoutes(): Promise<string[]> {
  const files = readdirSync(GATEWAY_SRC, { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.controller.ts'))
    .sort();
  const routes: string[] = [];
  for (const file of files) {
    const exports = (await import(path.join(GATEWAY_SRC, file))) as Record<string, unknown>;
    for (const controller of Object.values(exports)) {
      if (typeof controller === 'function' && Reflect.hasMetadata(PATH_METADATA, controller))
        routes.push(...routesOf(controller as Controller));
    }
  }
  return routes;
}

type Controller = abstract new (...args: never[]) => unknown;

function routesOf(controller: Controller): string[] {
  const prefix = Reflect.getMetadata(PATH_METADATA, controller) as string;
  const prototype = controller.prototype as Record<string, unknown>;
  return Object.getOwnPropertyNames(prototype).flatMap((name) => {
    const handler = prototype[name] as object;
    const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
    if (name === 'constructor' || method === undefined) return [];
    const routePath = `/${[prefix, Reflect.getMetadata(PATH_METADATA, handler) as string]
      .map((part) => part.replace(/^\/+|\/+$/g, ''))
      .filter(Boolean)
      .join('/')}`;
    return [`${RequestMethod[method]} ${routePath.replace(/:(\w+)/g, '{$1}')}`];
  });
}

function operationsOf(openApi: OpenApiDocument): { route: string; operation: Operation }[] {
  return Object.entries(openApi.paths).flatMap(([routePath, item]) =>
    Object.entries(item).map(([method, operation]) => ({ route: `${method.toUpperCase()} ${routePath}`, operation })),
  );
}

/** The responses whose body is the Error schema, with the codes each one narrows `code` to. */
function errorResponsesOf(openApi: OpenApiDocument) {
  return operationsOf(openApi).flatMap(({ route, operation }) =>
    Object.entries(operation.responses).flatMap(([status, response]) => {
      const schema = response.content?.['application/json']?.schema;
      if (!schema?.allOf?.some((part) => part.$ref === '#/components/schemas/Error')) return [];
      return [{ route, status: Number(status), response, codes: codesIn(response) }];
    }),
  );
}

/** Every value a response's schemas allow for a `code` property. */
function codesIn(value: unknown): unknown[] {
  if (!value || typeof value !== 'object') return [];
  const own = (value as Schema).properties?.['code']?.enum ?? [];
  return [...own, ...Object.values(value).flatMap((child) => codesIn(child))];
}

/** The status the gateway's exception filter answers a code with, as Nest would call it. */
function statusOf(code: unknown): number | undefined {
  let status: number | undefined;
  const response = {
    headersSent: false,
    setHeader: () => response,
    writeHead: (sent: number) => {
      status = sent;
      return response;
    },
    end: () => response,
  };
  const host = {
    getType: () => 'http',
    switchToHttp: () => ({ getResponse: () => response as unknown as HttpResponse }),
  } as unknown as ArgumentsHost;
  new HttpErrorsFilter({ error: () => undefined } as unknown as Logger).catch(
    new SynclineError(code as ErrorCode, 'test'),
    host,
  );
  return status;
}
