import { Inject, Injectable } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { RejectedMessageRecord } from '@syncline/persistence';
import { DATA_SOURCE } from '@syncline/platform';

const KEPT_BYTES = 8 * 1024;

@Injectable()
export class RejectedMessageRepository {
  constructor(@Inject(DATA_SOURCE) private readonly dataSource: DataSource) {}

  async record(stream: string, streamSeq: number, subject: string, reason: string, data: Uint8Array): Promise<void> {
    // Invalid UTF-8 and NUL would be refused by a text column: keep a readable, bounded copy.
    const payload = new TextDecoder('utf-8', { fatal: false })
      .decode(data.subarray(0, KEPT_BYTES))
      .replaceAll('\u0000', '\uFFFD');
    await this.dataSource.getRepository(RejectedMessageRecord).insert({
      stream,
      streamSeq: String(streamSeq),
      subject,
      reason: reason.slice(0, 2000).replaceAll('\u0000', '\uFFFD'),
      payload,
    });
  }
}
