import { beforeAll, describe, expect, it } from '@jest/globals';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { CloseCode, ErrorCode } from '@syncline/contracts';
import YAML from 'yaml';

const doc = (name: string) => fileURLToPath(new URL(`../../docs/${name}`, import.meta.url));

/** Codes only the HTTP edge sends: protocol.md names them in its HTTP section, not the WebSocket table. */
const HTTP_ONLY: readonly ErrorCode[] = [ErrorCode.NOT_FOUND];
/** A close code no server sends (the socket died without a close frame), listed for clients to handle. */
const NOT_SENT_BY_SERVER = [1006];

interface DescribedSchema {
  readonly description?: string;
}

/** `- \`KEY\` …: meaning` lines of a generated schema description, keyed by the code. */
function meanings(schema: DescribedSchema | undefined): Map<string, string> {
  const lines = (schema?.description ?? '').split('\n');
  return new Map(
    lines.flatMap((line) => {
      const match = /^- `([^`]+)`(?: \([^)]*\))?: (.*)$/.exec(line);
      return match ? [[match[1] as string, match[2] as string] as const] : [];
    }),
  );
}

/** The rows of the first table in a protocol.md section, keyed by the first cell's code. */
function tableRows(markdown: string, heading: string): Map<string, string> {
  const start = markdown.indexOf(`\n${heading}\n`);
  if (start === -1) throw new Error(`protocol.md has no "${heading}"`);
  const end = markdown.indexOf('\n## ', start + heading.length + 2);
  const section = markdown.slice(start, end === -1 ? undefined : end);
  // A row whose first cell is an error code in backticks or a close code (not the header).
  const code = /^\| (?:`([A-Z_]+)`|(\d{4})) +\|/;
  return new Map(
    section.split('\n').flatMap((line) => {
      const match = code.exec(line);
      return match ? [[(match[1] ?? match[2]) as string, line] as const] : [];
    }),
  );
}

/**
 * Every error code and close code the server can send appears in protocol.md, asyncapi.yaml and
 * openapi.yaml, and means the same in each: the generated documents carry the contracts' own
 * words, and protocol.md ties each close code to the error frame that comes before it.
 */
describe('error and close codes in the documents', () => {
  let protocol: string;
  let asyncapi: { components: { schemas: Record<string, DescribedSchema> } };
  let openapi: { components: { schemas: Record<string, DescribedSchema> } };

  beforeAll(async () => {
    protocol = await readFile(doc('protocol.md'), 'utf8');
    asyncapi = YAML.parse(await readFile(doc('asyncapi.yaml'), 'utf8')) as typeof asyncapi;
    openapi = YAML.parse(await readFile(doc('openapi.yaml'), 'utf8')) as typeof openapi;
  });

  it('lists every error code in protocol.md: the WebSocket ones in its table, the HTTP ones in its HTTP section', () => {
    const table = tableRows(protocol, '## 11. Error codes');
    const webSocketCodes = Object.values(ErrorCode).filter((code) => !HTTP_ONLY.includes(code));
    expect([...table.keys()].sort()).toEqual([...webSocketCodes].sort());
    const http = protocol.slice(protocol.indexOf('\n## 15. HTTP'));
    for (const code of HTTP_ONLY) expect(http).toContain(`\`${code}\``);
  });

  it('gives every error code the same meaning in asyncapi.yaml and openapi.yaml', () => {
    const inAsyncApi = meanings(asyncapi.components.schemas['ErrorCode']);
    const inOpenApi = meanings(openapi.components.schemas['ErrorCode']);
    expect([...inAsyncApi.keys()]).toEqual(Object.values(ErrorCode));
    expect(inOpenApi).toEqual(inAsyncApi);
  });

  it('lists every close code in protocol.md and asyncapi.yaml', () => {
    const table = tableRows(protocol, '## 12. Close codes');
    const sent = Object.values(CloseCode).map(String);
    expect([...table.keys()].sort()).toEqual([...sent, ...NOT_SENT_BY_SERVER.map(String)].sort());
    const inAsyncApi = meanings(asyncapi.components.schemas['CloseCode']);
    expect([...inAsyncApi.keys()].sort()).toEqual([...sent].sort());
  });

  it('ties each close code that follows an error frame to the same error code everywhere', () => {
    const closes = tableRows(protocol, '## 12. Close codes');
    const errors = tableRows(protocol, '## 11. Error codes');
    const followers = Object.entries(CloseCode).filter(([name]) => name in ErrorCode);
    expect(followers.length).toBeGreaterThan(0);
    for (const [name, code] of followers) {
      // The close code's row names its error frame, and the error code's row names the close.
      expect(closes.get(String(code))).toContain(`\`${name}\``);
      expect(errors.get(name)).toContain(`close ${code}`);
    }
    // And no error code's row names a close code the server does not send after it.
    for (const [name, row] of errors) {
      for (const [, code] of row.matchAll(/close (\d{4})/g)) {
        expect(CloseCode[name as keyof typeof CloseCode]).toBe(Number(code));
      }
    }
  });
});
