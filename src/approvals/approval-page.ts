import type { FastifyInstance, FastifyReply } from 'fastify';
import { ReflexError, toReflexError } from '../errors.ts';
import { engineDb } from '../engine/engine-schema.ts';
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.ts';
import { renderApprovalCard } from './approval-card.ts';
import { GateRefusal, type ApprovalGates } from './approval-gates.ts';
import { constantTimeEqual, csrfTokenFor, verifyApprovalLink } from './approval-links.ts';
import { describeApprovers } from './approval-policy.ts';

/**
 * The small mobile page a one-time approval link opens (`GET /approve/:token`), and the form it
 * posts (`POST /approve/:token`). For on-call engineers whose phone has SMS or e-mail but not the
 * chat app.
 *
 * - The token is verified (signature, expiry) before anything is read; the link row must be unused.
 * - The page shows what is asked, who asked, the quorum, the expiry, who decided so far, and two
 *   buttons (Deny asks for a reason). Plain HTML and a little CSS, no script, readable at 360 px.
 * - CSRF: the form carries a token bound to the link (HMAC with the server secret), also set as a
 *   SameSite=Strict, HttpOnly cookie scoped to /approve; the POST needs both, equal.
 * - The decision goes through the same gate code as a chat button, and claims the link in the same
 *   transaction: a second POST (or a replayed one) finds it used and is refused, and audited.
 * - `Referrer-Policy: no-referrer` and `Cache-Control: no-store`, because the URL is a credential.
 */
export interface ApprovalPageDeps {
  db: Kysely<Database>;
  gates: ApprovalGates;
  linkSecret: Buffer;
  now?: () => number;
}

const CSRF_COOKIE = 'reflex_approve_csrf';

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex"><title>${escapeHtml(title)} · SENTreflex</title>
<style>
*{box-sizing:border-box}body{font-family:system-ui,-apple-system,sans-serif;margin:0;background:#f4f5f7;color:#172b4d;font-size:17px;line-height:1.45}
main{max-width:30rem;margin:0 auto;padding:1rem}h1{font-size:1.3rem;margin:.5rem 0 1rem}
.card{background:#fff;border-radius:12px;padding:1rem;box-shadow:0 1px 3px rgba(0,0,0,.15);margin-bottom:1rem}
.ask{font-size:1.1rem;font-weight:600;white-space:pre-wrap;word-break:break-word}
dl{margin:.75rem 0 0;display:grid;grid-template-columns:auto 1fr;gap:.25rem .75rem;font-size:.9rem}dt{color:#5e6c84}dd{margin:0;word-break:break-word}
ul{padding-left:1.2rem;font-size:.9rem}label{display:block;font-size:.9rem;margin:.75rem 0 .25rem}
textarea{width:100%;min-height:4.5rem;font:inherit;padding:.5rem;border:1px solid #c1c7d0;border-radius:8px}
.buttons{display:flex;gap:.75rem;margin-top:1rem}
button{flex:1;min-height:3.25rem;font-size:1.1rem;font-weight:600;border:0;border-radius:10px;color:#fff;cursor:pointer}
.approve{background:#1f845a}.deny{background:#c9372c}.note{font-size:.85rem;color:#5e6c84}
.ok{border-left:6px solid #1f845a}.bad{border-left:6px solid #c9372c}
</style></head><body><main>${body}</main></body></html>`;
}

function send(reply: FastifyReply, status: number, html: string): FastifyReply {
  return reply
    .status(status)
    .header('content-type', 'text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .header('referrer-policy', 'no-referrer')
    .header('x-frame-options', 'DENY')
    .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    .send(html);
}

function message(reply: FastifyReply, status: number, title: string, text: string, ok = false): FastifyReply {
  return send(reply, status, page(title, `<h1>${escapeHtml(title)}</h1><div class="card ${ok ? 'ok' : 'bad'}"><p id="outcome">${escapeHtml(text)}</p></div>`));
}

const LINK_REFUSALS = {
  malformed: 'This approval link is not valid.',
  bad_signature: 'This approval link is not valid.',
  expired: 'This approval link has expired.',
} as const;

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return decodeURIComponent(v.join('='));
  }
  return undefined;
}

export function registerApprovalPage(app: FastifyInstance, deps: ApprovalPageDeps): void {
  const now = deps.now ?? Date.now;

  async function openLink(token: string) {
    const v = verifyApprovalLink({ secret: deps.linkSecret, token, nowMilliseconds: now() });
    if (!v.ok) return { error: LINK_REFUSALS[v.reason] } as const;
    const link = await engineDb(deps.db).selectFrom('approval_links').selectAll().where('id', '=', v.payload.linkId).executeTakeFirst();
    if (!link) return { error: LINK_REFUSALS.malformed } as const;
    // The link row's own expiry too: a gate that expired early (or a link revoked by shortening it) ends the link.
    if (link.expires_at.getTime() <= now()) return { error: LINK_REFUSALS.expired } as const;
    if (link.used_at) return { error: 'This approval link was used already; each link works once.' } as const;
    const gate = await deps.gates.get(link.approval_id);
    if (!gate) return { error: LINK_REFUSALS.malformed } as const;
    return { link, gate, payload: v.payload } as const;
  }

  // Encapsulated: the form body parser exists only for these two routes.
  void app.register(async (scope) => {
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 16 * 1024 }, (_req, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });

    scope.get<{ Params: { token: string } }>('/approve/:token', async (req, reply) => {
      const opened = await openLink(req.params.token);
      if ('error' in opened) return message(reply, 410, 'Approval link', opened.error!);
      const { gate, link } = opened;
      const view = await deps.gates.view(gate);
      const card = renderApprovalCard(view);
      const who = await deps.db.selectFrom('principals').select('display_name').where('id', '=', link.principal_id).executeTakeFirst();
      const csrf = csrfTokenFor(deps.linkSecret, link.id);
      const secure = req.protocol === 'https' ? '; Secure' : '';
      reply.header('set-cookie', `${CSRF_COOKIE}=${csrf}; Path=/approve; HttpOnly; SameSite=Strict; Max-Age=3600${secure}`);
      const decisions = view.decisions.length
        ? `<ul>${view.decisions.map((d) => `<li>${escapeHtml(d.displayName)} ${d.decision === 'approve' ? 'approved' : 'denied'}${d.reason ? `: ${escapeHtml(d.reason)}` : ''}</li>`).join('')}</ul>`
        : '<p class="note">Nobody has decided yet.</p>';
      const pending = gate.status === 'pending';
      const form = pending
        ? `<form method="post" action="/approve/${escapeHtml(req.params.token)}">
<input type="hidden" name="csrf" value="${escapeHtml(csrf)}">
<label for="reason">Reason (needed to deny)</label><textarea id="reason" name="reason" maxlength="1000"></textarea>
<div class="buttons"><button class="approve" type="submit" name="decision" value="approve">Approve</button>
<button class="deny" type="submit" name="decision" value="deny">Deny</button></div></form>`
        : `<p id="outcome">This approval is ${escapeHtml(gate.status)}.</p>`;
      return send(
        reply,
        200,
        page(
          'Approval needed',
          `<h1>${escapeHtml(card.title ?? 'Approval')}</h1><div class="card"><div class="ask" id="summary">${escapeHtml(gate.summary)}</div>
<dl><dt>For</dt><dd>${escapeHtml(who?.display_name ?? 'you')}</dd><dt>Tenant</dt><dd>${escapeHtml(gate.tenant_id)}</dd>
<dt>Playbook</dt><dd>${escapeHtml(view.playbookId ?? '-')}${view.stepId ? ` / ${escapeHtml(view.stepId)}` : ''}</dd>
<dt>Requested by</dt><dd>${escapeHtml(gate.requested_by)}</dd><dt>Approvers</dt><dd>${escapeHtml(describeApprovers(view.policy))}</dd>
<dt>Quorum</dt><dd>${view.decisions.filter((d) => d.decision === 'approve').length} of ${view.policy.quorum}</dd>
<dt>Expires</dt><dd>${escapeHtml(gate.expires_at.toISOString().replace('T', ' ').slice(0, 16))} UTC</dd></dl></div>
<div class="card"><strong>Decisions</strong>${decisions}</div><div class="card">${form}</div>
<p class="note">This link works once and only for you. Every decision is recorded in the audit log.</p>`,
        ),
      );
    });

    scope.post<{ Params: { token: string }; Body: Record<string, string> | undefined }>('/approve/:token', async (req, reply) => {
      const opened = await openLink(req.params.token);
      if ('error' in opened) return message(reply, 410, 'Approval link', opened.error!);
      const { link, gate } = opened;
      const body = req.body ?? {};
      const expected = csrfTokenFor(deps.linkSecret, link.id);
      const cookie = cookieValue(req.headers.cookie, CSRF_COOKIE);
      if (!cookie || typeof body['csrf'] !== 'string' || !constantTimeEqual(cookie, expected) || !constantTimeEqual(body['csrf'], expected)) {
        return message(reply, 403, 'Not recorded', 'The form could not be verified (open the link again from the message you received).');
      }
      const decision = body['decision'];
      if (decision !== 'approve' && decision !== 'deny') return message(reply, 400, 'Not recorded', 'Choose Approve or Deny.');
      const reason = (body['reason'] ?? '').trim();
      if (decision === 'deny' && reason === '') return message(reply, 400, 'Not recorded', 'Give a reason to deny.');
      const who = await deps.db.selectFrom('principals').select('display_name').where('id', '=', link.principal_id).executeTakeFirst();
      try {
        const r = await deps.gates.decide({
          tenantId: gate.tenant_id,
          approvalRef: gate.id,
          principal: { principalId: link.principal_id, displayName: who?.display_name ?? link.principal_id },
          decision,
          reason: reason || undefined,
          via: 'mobile-link',
          claim: async (trx) => {
            const claimed = await engineDb(trx)
              .updateTable('approval_links')
              .set({ used_at: new Date(now()) })
              .where('id', '=', link.id)
              .where('used_at', 'is', null)
              .executeTakeFirst();
            if (Number(claimed.numUpdatedRows) === 0) throw new GateRefusal('link_used', 'This approval link was used already; each link works once.');
          },
        });
        const text =
          r.status === 'pending'
            ? `You ${decision === 'approve' ? 'approved' : 'denied'} it. ${r.approvals} of ${r.quorum} approvals so far; waiting for ${r.remaining} more.`
            : `You ${decision === 'approve' ? 'approved' : 'denied'} it. The request is now ${r.status}.`;
        return message(reply, 200, 'Recorded', text, true);
      } catch (err) {
        const e = err instanceof ReflexError ? err : toReflexError(err);
        if (e.httpStatus >= 500) throw err;
        return message(reply, e.httpStatus, 'Not recorded', e.safeMessage);
      }
    });
  });
}
