import { Catch, HttpException, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { ErrorCode, SynclineError } from '@syncline/contracts';
import type { Logger } from '@syncline/platform';
import type { HttpResponse } from './http-types.js';

const STATUS: Readonly<Record<ErrorCode, number>> = {
  BAD_FRAME: 400,
  UNKNOWN_TYPE: 400,
  VALIDATION_FAILED: 400,
  UNSAFE_INPUT: 400,
  INVALID_IDENTIFIER: 400,
  INVALID_CURSOR: 400,
  CLOCK_SKEW: 400,
  UNSUPPORTED_PROTOCOL: 400,
  LIMIT_EXCEEDED: 400,
  AUTH_INVALID: 401,
  AUTH_EXPIRED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  FRAME_TOO_LARGE: 413,
  RATE_LIMITED: 429,
  OVERLOADED: 503,
  INTERNAL: 500,
  UNAVAILABLE: 503,
};

/**
 * Every HTTP error leaves as `{ code, message, retryAfterMs? }` with the status its code maps to,
 * so HTTP clients switch on the same stable codes as WebSocket clients.
 */
@Catch()
export class HttpErrorsFilter implements ExceptionFilter {
  constructor(private readonly logger: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    if (host.getType() !== 'http') return;
    const response = host.switchToHttp().getResponse<HttpResponse>();
    if (response.headersSent) {
      response.end();
      return;
    }
    const error = this.toSynclineError(exception);
    const status = STATUS[error.code] ?? 500;
    if (error.retryAfterMs !== undefined) response.setHeader('retry-after', Math.ceil(error.retryAfterMs / 1000));
    response.writeHead(status, { 'content-type': 'application/json' });
    response.end(
      JSON.stringify({
        code: error.code,
        message: error.message,
        ...(error.retryAfterMs === undefined ? {} : { retryAfterMs: error.retryAfterMs }),
      }),
    );
  }

  private toSynclineError(exception: unknown): SynclineError {
    if (exception instanceof SynclineError) return exception;
    if (exception instanceof HttpException) return fromHttpStatus(exception.getStatus(), exception.message);
    // Express's body parser reports unreadable bodies with a status and a type.
    const status = (exception as { status?: unknown })?.status;
    if (typeof status === 'number' && status >= 400 && status < 500) return fromHttpStatus(status, 'unreadable body');
    this.logger.error({ err: exception }, 'HTTP request failed');
    return new SynclineError(ErrorCode.INTERNAL, 'internal error');
  }
}

function fromHttpStatus(status: number, message: string): SynclineError {
  if (status === 404) return new SynclineError(ErrorCode.NOT_FOUND, 'no such route');
  if (status === 413) return new SynclineError(ErrorCode.FRAME_TOO_LARGE, 'request body too large');
  if (status === 400) return new SynclineError(ErrorCode.BAD_FRAME, `request body is not valid JSON (${message})`);
  return new SynclineError(status === 401 ? ErrorCode.AUTH_INVALID : ErrorCode.VALIDATION_FAILED, message);
}
