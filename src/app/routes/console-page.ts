import type { Feature } from '../features.ts';

/**
 * `/`: until the SENTchat console lands, a plain page that says what is running and where the
 * API is, instead of a 404 for the first URL the banner prints.
 */
export const consoleFeature: Feature = {
  name: 'console',
  async register({ http, role, queues, config }) {
    if (role !== 'all') return;
    http.get('/', async (_req, reply) =>
      reply
        .type('text/html; charset=utf-8')
        .send(
          `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">` +
            `<title>SENTreflex</title></head><body style="font-family:system-ui;max-width:40rem;margin:2rem auto;padding:0 1rem">` +
            `<h1>SENTreflex is running</h1><p>Mode: ${config.mode === 'embedded' ? 'embedded PostgreSQL' : 'external PostgreSQL'}, queue backend: ${queues.backend}.</p>` +
            `<p>API: <code>/api/v1/…</code> with <code>Authorization: Bearer &lt;REFLEX_API_TOKEN&gt;</code>. Health: <a href="/readyz">/readyz</a>, metrics: <a href="/metrics">/metrics</a>.</p>` +
            `</body></html>`,
        ),
    );
  },
};
