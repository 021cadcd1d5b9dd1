#!/usr/bin/env node
/**
 * Prints a client token the gateway accepts: an HS256 JWT with `sub` and `tenant` claims.
 *
 *   npm run -s token -- --tenant acme --user alice [--ttl 1h] [--secret ...]
 *
 * Also imported by scripts/dev.mjs for the token in its banner.
 */
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';

/** Keep in sync with DEVELOPMENT_JWT_SECRET in apps/gateway/src/config.ts. */
export const DEVELOPMENT_JWT_SECRET = 'syncline-development-secret-change-me-0123456789';

const TENANT_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

const USAGE = `Usage: npm run -s token -- --tenant <tenant> --user <user id> [options]

Prints an HS256 JWT for the Syncline gateway (claims: sub, tenant, iat, exp).

Options:
  --tenant <name>     tenant claim, [A-Za-z0-9_-]{1,64} (required)
  --user <id>         user id, the "sub" claim (required)
  --ttl <span>        lifetime: "1h", "30m", "7d", "90s" or seconds (default: 1h)
  --secret <secret>   signing secret, at least 32 characters
                      (default: $JWT_SECRET, else the development secret)
  --issuer <iss>      "iss" claim (default: $JWT_ISSUER, if set)
  --audience <aud>    "aud" claim (default: $JWT_AUDIENCE, if set)
  -h, --help          show this help

Connect with the sub-protocols ["syncline.v1", "bearer.<token>"].
Use "npm run -s token" (with -s) to get only the token on stdout.`;

/**
 * Signs a token. `ttl` is a jose time span ("1h", "30 m") or a number of seconds (negative
 * gives an already expired token).
 */
export async function mintToken({ tenant, user, ttl = '1h', secret = DEVELOPMENT_JWT_SECRET, issuer, audience }) {
  if (!TENANT_PATTERN.test(tenant)) throw new UsageError(`--tenant must match [A-Za-z0-9_-]{1,64}, got "${tenant}"`);
  if (!user || user.length > 256) throw new UsageError('--user must be 1-256 characters');
  if (secret.length < 32)
    throw new UsageError('the secret must be at least 32 characters (the gateway refuses shorter)');
  const jwt = new SignJWT({ tenant }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject(user).setIssuedAt();
  if (issuer) jwt.setIssuer(issuer);
  if (audience) jwt.setAudience(audience);
  try {
    jwt.setExpirationTime(expiration(ttl));
  } catch {
    throw new UsageError(`--ttl "${ttl}" is not a time span like 1h, 30m, 7d or a number of seconds`);
  }
  return jwt.sign(new TextEncoder().encode(secret));
}

function expiration(ttl) {
  if (typeof ttl === 'number') return Math.floor(Date.now() / 1000) + ttl;
  if (/^-?\d+$/.test(ttl.trim())) return Math.floor(Date.now() / 1000) + Number(ttl);
  return ttl;
}

export class UsageError extends Error {}

async function main(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        tenant: { type: 'string' },
        user: { type: 'string' },
        ttl: { type: 'string', default: '1h' },
        secret: { type: 'string' },
        issuer: { type: 'string' },
        audience: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UsageError(error.message);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (!values.tenant || !values.user) throw new UsageError('--tenant and --user are required');
  const issuer = values.issuer ?? process.env.JWT_ISSUER;
  const audience = values.audience ?? process.env.JWT_AUDIENCE;
  const token = await mintToken({
    tenant: values.tenant,
    user: values.user,
    ttl: values.ttl,
    secret: values.secret ?? process.env.JWT_SECRET ?? DEVELOPMENT_JWT_SECRET,
    ...(issuer ? { issuer } : {}),
    ...(audience ? { audience } : {}),
  });
  process.stdout.write(`${token}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((error) => {
    if (error instanceof UsageError) {
      process.stderr.write(`mint-token: ${error.message}\n\n${USAGE}\n`);
      process.exit(2);
    }
    process.stderr.write(`mint-token: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
