import { Controller, Get, Req, Res } from '@nestjs/common';
import { sseRequestSchema } from '@syncline/contracts';
import { requireRead } from '../auth/authorize.js';
import { HttpAuth } from '../http/http-auth.js';
import type { HttpRequest, HttpResponse } from '../http/http-types.js';
import { parseInput } from '../http/validation.js';
import { SseService } from './sse.service.js';

/**
 * `GET /api/v1/sync/events?entityTypes=orders,users[&entityId=o-1][&events=created,deleted]`:
 * the changes as Server-Sent Events, resumable with `Last-Event-ID`.
 */
@Controller('api/v1/sync')
export class SseController {
  constructor(
    private readonly auth: HttpAuth,
    private readonly streams: SseService,
  ) {}

  @Get('events')
  async events(@Req() request: HttpRequest, @Res() response: HttpResponse): Promise<void> {
    const principal = await this.auth.principal(request, { allowQueryToken: true });
    const { access_token: _token, ...query } = request.query;
    const parsed = parseInput(sseRequestSchema, query, 'query');
    requireRead(principal, parsed.entityTypes);
    const header = request.headers['last-event-id'];
    const cursor = (Array.isArray(header) ? header[0] : header) || parsed.lastEventId;
    await this.streams.open(principal, parsed, cursor, response);
  }
}
