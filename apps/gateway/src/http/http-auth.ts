import { Injectable } from '@nestjs/common';
import { ErrorCode, SynclineError } from '@syncline/contracts';
import { TokenVerifier, type Principal } from '../auth/token-verifier.js';
import type { HttpRequest } from './http-types.js';

/** The principal of an HTTP request, from `Authorization: Bearer <token>`. */
@Injectable()
export class HttpAuth {
  constructor(private readonly verifier: TokenVerifier) {}

  /**
   * `allowQueryToken` lets `EventSource`, which cannot set headers, pass `access_token` in the
   * query; only the SSE route allows it, and a short-lived token is the safer choice there.
   */
  principal(request: HttpRequest, { allowQueryToken = false } = {}): Promise<Principal> {
    const header = request.headers.authorization;
    const fromHeader = header?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
    const fromQuery = allowQueryToken ? request.query['access_token'] : undefined;
    const token = fromHeader ?? (typeof fromQuery === 'string' ? fromQuery : undefined);
    if (!token) {
      return Promise.reject(
        new SynclineError(ErrorCode.AUTH_INVALID, 'no token: send "Authorization: Bearer <token>"'),
      );
    }
    return this.verifier.verify(token);
  }
}
