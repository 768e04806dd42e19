import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import { buildAnswerTwiml } from '../../integrations/twilio/twiml.ts';
import { PHONE_ACK_PATH, type PhoneAcknowledgements } from './phone-acknowledgements.ts';

/**
 * `POST /api/v1/phone/ack/<token>`: where Twilio posts the keypress of a `phone.call`'s
 * "press 1 to acknowledge" (`<Gather action>`). A transport only: it parses the form body,
 * hands it with the token, the path and `X-Twilio-Signature` to `PhoneAcknowledgements.answer`,
 * and sends back the TwiML it gets. No bearer token: Twilio cannot send one; the request is
 * authenticated by Twilio's signature and the signed token (see phone-acknowledgements.ts).
 *
 * @example
 * registerPhoneAckRoutes(app, { acknowledgements });
 */
export interface PhoneAckRoutesDeps {
  acknowledgements: PhoneAcknowledgements;
}

/** Twilio's Gather posts are a few hundred bytes; anything near this is not Twilio. */
const BODY_LIMIT = 16 * 1024;
const params = z.object({ token: z.string().min(1).max(1024).regex(/^[A-Za-z0-9._-]+$/) });

function twiml(reply: FastifyReply, status: number, body: string): FastifyReply {
  return reply.status(status).header('content-type', 'text/xml; charset=utf-8').header('cache-control', 'no-store').send(body);
}

export function registerPhoneAckRoutes(app: FastifyInstance, deps: PhoneAckRoutesDeps): void {
  // Encapsulated: this form parser (which keeps every pair, for the signature) exists only here.
  void app.register(async (scope) => {
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: BODY_LIMIT }, (_req, body, done) => {
      done(null, [...new URLSearchParams(body as string)]);
    });

    // A wildcard, not `:token`: the router refuses named parameters over 100 characters (414),
    // and the token carries its own binding (tenant, run, step, callee), so it is longer.
    scope.post<{ Params: { '*': string }; Body: [string, string][] | undefined }>(`${PHONE_ACK_PATH}/*`, async (req, reply) => {
      const p = params.safeParse({ token: req.params['*'] });
      if (!p.success || !Array.isArray(req.body)) {
        return twiml(reply, 400, buildAnswerTwiml('Sorry, that request was not understood. Nothing was recorded. Goodbye.'));
      }
      const signature = req.headers['x-twilio-signature'];
      const answer = await deps.acknowledgements.answer({
        token: p.data.token,
        pathAndQuery: req.url,
        signature: typeof signature === 'string' ? signature : undefined,
        params: req.body,
      });
      return twiml(reply, answer.status, answer.twiml);
    });
  });
}
