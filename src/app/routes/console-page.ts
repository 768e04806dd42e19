import type { Feature } from '../features.ts';

/**
 * `/`: the web console, which is SENTchat (the built-in chat, `src/bot/sentchat/`), whose API the
 * chat feature serves. With the chat feature disabled, a plain page says what is running and
 * where the API is, instead of a sign-in form with nothing behind it. Disabling `console` leaves
 * `/` unserved (a headless API process).
 */
export const consoleFeature: Feature = {
  name: 'console',
  async register({ http, role, queues, config }) {
    if (role !== 'all') return;
    if (!config.disabledFeatures.includes('chat')) {
      const { SENTCHAT_PAGE_HTML, SENTCHAT_PAGE_HEADERS } = await import('../../bot/sentchat/sentchat-page.ts');
      http.get('/', async (_req, reply) => reply.headers(SENTCHAT_PAGE_HEADERS).send(SENTCHAT_PAGE_HTML));
      return;
    }
    http.get('/', async (_req, reply) =>
      reply
        .type('text/html; charset=utf-8')
        .send(
          `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">` +
            `<title>SENTreflex</title></head><body style="font-family:system-ui;max-width:40rem;margin:2rem auto;padding:0 1rem">` +
            `<h1>SENTreflex is running</h1><p>Mode: ${config.mode === 'embedded' ? 'embedded PostgreSQL' : 'external PostgreSQL'}, queue backend: ${queues.backend}.</p>` +
            `<p>SENTchat, the web chat, is off because the <code>chat</code> feature is disabled (<code>REFLEX_DISABLED_FEATURES</code>).</p>` +
            `<p>API: <code>/api/v1/…</code> with <code>Authorization: Bearer &lt;REFLEX_API_TOKEN&gt;</code>. Health: <a href="/readyz">/readyz</a>, metrics: <a href="/metrics">/metrics</a>.</p>` +
            `</body></html>`,
        ),
    );
  },
};
