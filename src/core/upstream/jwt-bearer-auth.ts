/**
 * Bearer tokens signed from an access key and a secret key (HS256 JWT, RFC 7519), as Kling's own
 * API asks for them: `iss` = access key, `exp` and `nbf` around the signing time. A token is
 * reused until shortly before it expires, then a new one is signed; the secret key itself never
 * leaves this object. Signed with `jose` (a maintained JOSE library; the simulator verifies with
 * it too), on the injected clock so tests can move time.
 */
import { SignJWT } from 'jose';
import type { Clock } from '../clock.js';
import type { UpstreamAuth } from './provider.js';

export interface JwtBearerSettings {
  accessKey: string;
  secretKey: string;
  /** How long a token is valid (`exp` = signing time + this). */
  lifetimeMs: number;
  /** How far back `nbf` is set, for clocks a little ahead of ours. */
  notBeforeSkewMs: number;
  /** A token this close to its expiry is not sent any more; a fresh one is signed. */
  refreshBeforeMs: number;
  clock: Clock;
}

/** The HS256 JWT for `settings` signed at `nowMs` (whole seconds, as JWT times are). */
export async function signAccessToken(settings: Pick<JwtBearerSettings, 'accessKey' | 'secretKey' | 'lifetimeMs' | 'notBeforeSkewMs'>, nowMs: number): Promise<string> {
  const now = Math.floor(nowMs / 1000);
  return new SignJWT({
    iss: settings.accessKey,
    exp: now + Math.floor(settings.lifetimeMs / 1000),
    nbf: now - Math.ceil(settings.notBeforeSkewMs / 1000),
  })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .sign(new TextEncoder().encode(settings.secretKey));
}

export class JwtBearerAuth implements UpstreamAuth {
  readonly secrets: readonly string[];
  private current: { token: string; refreshAt: number } | undefined;
  private signing: Promise<string> | undefined;

  constructor(private readonly settings: JwtBearerSettings) {
    this.secrets = [settings.secretKey];
  }

  async headers(): Promise<Record<string, string>> {
    return { authorization: `Bearer ${await this.token()}` };
  }

  /** The cached token while it has more than `refreshBeforeMs` left; otherwise a new one (one signing at a time). */
  private async token(): Promise<string> {
    const now = this.settings.clock.now();
    if (this.current && now < this.current.refreshAt) return this.current.token;
    this.signing ??= signAccessToken(this.settings, now)
      .then((token) => {
        this.current = { token, refreshAt: now + this.settings.lifetimeMs - this.settings.refreshBeforeMs };
        return token;
      })
      .finally(() => {
        this.signing = undefined;
      });
    return this.signing;
  }
}
