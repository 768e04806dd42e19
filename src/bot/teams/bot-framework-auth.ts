import { JwtValidator } from '@microsoft/teams.apps/dist/middleware/auth/jwt-validator.js';
import { z } from 'zod';
import type { Logger } from '../../app/logger.ts';
import { ReflexError } from '../../errors.ts';
import { sdkLogger } from './sdk-logger.ts';

/** How long the OpenID metadata (issuer, keys URL) is trusted before it is read again. */
const METADATA_TTL_MS = 24 * 3600_000;
const METADATA_TIMEOUT_MS = 10_000;

const openIdMetadata = z.object({
  issuer: z.string().min(1).optional(),
  jwks_uri: z.string().url().refine((u) => new URL(u).protocol === 'https:', 'must be https'),
});

export type BotFrameworkCheck =
  | { ok: true; claims: { appId: string | undefined; serviceUrl: string } }
  | { ok: false; reason: 'missing_token' | 'missing_service_url' | 'invalid_token' };

export interface BotFrameworkAuthOptions {
  /** The bot's app (client) id: the audience every token must be for. */
  clientId: string;
  /** `TEAMS_OPENID_METADATA_URL` or the cloud's. */
  openIdMetadataUrl: string;
  /** Used when the metadata names no issuer. */
  defaultIssuer: string;
  logger: Logger;
}

/**
 * Authenticates a Bot Framework request (`POST /api/messages`): the `Authorization: Bearer` JWT
 * must be RS256-signed by a key in the JWKS that the OpenID metadata points to, issued by the
 * metadata's issuer (`https://api.botframework.com`), for our app id, unexpired (5 min skew), and
 * its `serviceurl` claim must be the activity's `serviceUrl`, so a token captured from one
 * conversation cannot aim our bot token at another host. Signature, audience, expiry and the
 * serviceurl claim are checked by the Teams SDK's `JwtValidator`; the metadata is read here
 * because the SDK's own `ServiceTokenValidator` guesses the keys URL from the metadata URL.
 *
 * Not checked: the JWKS `endorsements` (which channels a key may sign for); the SDK does not
 * expose the key it used.
 *
 * @example
 * const check = await auth.verify(req.headers.authorization, activity.serviceUrl);
 * if (!check.ok) return reply.status(401).send();
 */
export class BotFrameworkAuth {
  private metadata: { issuer: string; jwksUri: string; fetchedAt: number } | undefined;
  private validator: { key: string; jwt: JwtValidator } | undefined;

  constructor(private readonly opts: BotFrameworkAuthOptions) {}

  async verify(authorization: string | undefined, serviceUrl: string | undefined): Promise<BotFrameworkCheck> {
    const token = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*)$/.exec(authorization?.trim() ?? '')?.[1];
    if (!token) return { ok: false, reason: 'missing_token' };
    if (!serviceUrl) return { ok: false, reason: 'missing_service_url' };
    const jwt = await this.jwtValidator();
    // The SDK answers null for every failure (bad signature, audience, issuer, expiry, serviceurl).
    const payload = await jwt.validateAccessToken(token, { validateServiceUrl: { expectedServiceUrl: serviceUrl } }).catch(() => null);
    if (!payload) return { ok: false, reason: 'invalid_token' };
    return { ok: true, claims: { appId: typeof payload.appid === 'string' ? payload.appid : undefined, serviceUrl } };
  }

  private async jwtValidator(): Promise<JwtValidator> {
    const meta = await this.openIdMetadata();
    const key = `${meta.issuer}\n${meta.jwksUri}`;
    if (this.validator?.key !== key) {
      this.validator = {
        key,
        jwt: new JwtValidator(
          {
            clientId: this.opts.clientId,
            validateIssuer: { allowedIssuer: meta.issuer },
            jwksUriOptions: { type: 'uri', uri: meta.jwksUri },
          },
          sdkLogger(this.opts.logger),
        ),
      };
    }
    return this.validator.jwt;
  }

  private async openIdMetadata(): Promise<{ issuer: string; jwksUri: string }> {
    const now = Date.now();
    if (this.metadata && now - this.metadata.fetchedAt < METADATA_TTL_MS) return this.metadata;
    let body: unknown;
    try {
      const res = await fetch(this.opts.openIdMetadataUrl, { redirect: 'error', signal: AbortSignal.timeout(METADATA_TIMEOUT_MS) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      body = await res.json();
    } catch (err) {
      // Keep using what we had: Microsoft's metadata host being down must not lock the bot out.
      if (this.metadata) return this.metadata;
      throw new ReflexError('upstream.unavailable', `Bot Framework OpenID metadata unavailable: ${err instanceof Error ? err.message : String(err)}`, {
        safeMessage: 'Cannot check Bot Framework tokens right now.',
      });
    }
    const parsed = openIdMetadata.safeParse(body);
    if (!parsed.success) {
      if (this.metadata) return this.metadata;
      throw new ReflexError('upstream.unavailable', 'Bot Framework OpenID metadata has no https jwks_uri', { safeMessage: 'Cannot check Bot Framework tokens right now.' });
    }
    this.metadata = { issuer: parsed.data.issuer ?? this.opts.defaultIssuer, jwksUri: parsed.data.jwks_uri, fetchedAt: now };
    return this.metadata;
  }
}
