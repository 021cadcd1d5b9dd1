import { beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { DiagnosticSeverity, Parser, type AsyncAPIDocumentInterface, type Diagnostic } from '@asyncapi/parser';
import {
  CloseCode,
  ErrorCode,
  clientFrameSchemas,
  envelopeSchema,
  isClientFrameType,
  serverFrameTypes,
} from '@syncline/contracts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DOCUMENT = fileURLToPath(new URL('../../docs/asyncapi.yaml', import.meta.url));

/** docs/asyncapi.yaml is generated from libs/contracts; these checks keep the two from drifting apart. */
describe('docs/asyncapi.yaml', () => {
  let document: AsyncAPIDocumentInterface;
  let diagnostics: Diagnostic[];

  beforeAll(async () => {
    const parsed = await new Parser().parse(await readFile(DOCUMENT, 'utf8'));
    diagnostics = parsed.diagnostics;
    if (parsed.document) document = parsed.document;
  });

  it('is a valid AsyncAPI document', () => {
    const errors = diagnostics
      .filter((diagnostic) => diagnostic.severity === DiagnosticSeverity.Error)
      .map((diagnostic) => `${diagnostic.path.join('.')}: ${diagnostic.message}`);
    expect(errors).toEqual([]);
    expect(document).toBeDefined();
  });

  it('has a message on the WebSocket channel for every client and server frame type', () => {
    const onChannel = document
      .channels()
      .get('gateway')
      ?.messages()
      .all()
      .map((message) => [message.id(), message.name()]);
    const expected = [
      ...Object.keys(clientFrameSchemas).map((type) => [`client.${type}`, type]),
      ...serverFrameTypes.map((type) => [`server.${type}`, type]),
    ];
    expect(onChannel).toEqual(expected);
  });

  it('lists every error code and close code', () => {
    const schemas = document.components().schemas();
    expect(schemas.get('ErrorCode')?.enum()).toEqual(Object.values(ErrorCode));
    expect(schemas.get('CloseCode')?.enum()).toEqual(Object.values(CloseCode));
  });

  it('has client frame examples that the contracts accept', () => {
    const examples = document
      .allMessages()
      .all()
      .filter((message) => message.id().startsWith('client.'))
      .flatMap((message) =>
        message
          .examples()
          .all()
          .map((example) => example.payload()),
      );
    expect(examples.length).toBeGreaterThan(0);
    for (const frame of examples) {
      const envelope = envelopeSchema.parse(frame);
      if (!isClientFrameType(envelope.type)) throw new Error(`example of unknown frame type ${envelope.type}`);
      expect(clientFrameSchemas[envelope.type].safeParse(envelope.payload).error).toBeUndefined();
    }
  });

  it('is what the generator makes from the contracts now', () => {
    const check = spawnSync(process.execPath, ['scripts/generate-asyncapi.mjs', '--check'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    // On failure the generator's own message says what to run.
    expect(check.status === 0 ? 'up to date' : check.stderr).toBe('up to date');
  });
});
