import { createHash } from 'node:crypto';
import { SENTCHAT_SCRIPT } from './sentchat-page-script.ts';
import { SENTCHAT_STYLE } from './sentchat-page-style.ts';

/**
 * The SENTchat page served at `/`: one self-contained document (inline CSS and a small vanilla
 * module, no build step, no CDN). It holds nothing per user; everything it shows comes from the
 * `/sentchat/api` and the WebSocket after sign-in.
 *
 * The Content-Security-Policy allows exactly this page's script and style (by hash), same-origin
 * fetches and WebSockets, and nothing else: no inline event handlers, no other origins, no frames.
 */
const hash = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

export const SENTCHAT_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1,viewport-fit=cover">
<meta name="referrer" content="no-referrer">
<title>SENTchat · SENTreflex</title>
<link rel="icon" href="data:,">
<style>${SENTCHAT_STYLE}</style>
</head>
<body>
<section id="signin" class="screen" hidden>
  <form id="signin-form" class="signin-card" novalidate>
    <div class="brand"><span class="logo">◆</span> SENTchat</div>
    <h1>Sign in</h1>
    <p id="token-hint" class="muted">Paste the API token SENTreflex printed when it started, or your personal token (rpt_…).</p>
    <label for="token">Token</label>
    <input id="token" name="token" type="password" autocomplete="off" autocapitalize="off" spellcheck="false" required>
    <p id="signin-error" class="error" role="alert" hidden></p>
    <button id="signin-button" type="submit" class="primary">Sign in</button>
    <div id="sso" hidden>
      <div class="or">or</div>
      <a class="button" href="/sentchat/auth/oidc/start">Sign in with single sign-on</a>
    </div>
  </form>
</section>
<section id="denied" class="screen" hidden>
  <div class="signin-card">
    <div class="brand"><span class="logo">◆</span> SENTchat</div>
    <h1>Not yet</h1>
    <p>You are signed in as <code id="denied-identity" class="identity"></code>, but you have no role here yet.</p>
    <p id="denied-hint" class="muted"></p>
    <button id="denied-signout" type="button" class="secondary">Sign out</button>
  </div>
</section>
<section id="chat" hidden>
  <header class="topbar">
    <button id="menu" type="button" aria-label="Channels" aria-controls="sidebar" aria-expanded="false">☰</button>
    <div class="brand"><span class="logo">◆</span><span>SENTchat</span></div>
    <div id="conn" class="conn" role="status">Connecting…</div>
    <div class="me">
      <div class="who"><span id="me-name"></span><span id="me-tenant" class="muted"></span></div>
      <button id="signout" type="button" class="ghost">Sign out</button>
    </div>
  </header>
  <div class="layout">
    <nav id="sidebar" aria-label="Channels">
      <h2>Channels</h2><ul id="list-public"></ul>
      <h2>Incident rooms</h2><ul id="list-incident"></ul>
      <h2>Direct messages</h2><ul id="list-dm"></ul>
    </nav>
    <main>
      <div class="channel-head"><h1 id="channel-name"></h1><p id="channel-topic"></p></div>
      <div id="banner" class="banner" role="alert" hidden></div>
      <div id="messages" class="messages" aria-live="polite"></div>
      <form id="composer">
        <textarea id="input" rows="1" aria-label="Message" placeholder="Message"></textarea>
        <button id="send" type="submit" class="primary">Send</button>
      </form>
      <p class="hint"><span class="desk">Enter sends · Shift+Enter: new line · </span><code>/reflex help</code> lists the commands</p>
    </main>
  </div>
  <div id="scrim" hidden></div>
</section>
<script type="module">${SENTCHAT_SCRIPT}</script>
</body>
</html>
`;

export const SENTCHAT_PAGE_CSP = [
  "default-src 'none'",
  `script-src ${hash(SENTCHAT_SCRIPT)}`,
  `style-src ${hash(SENTCHAT_STYLE)}`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** Headers the page is served with. */
export const SENTCHAT_PAGE_HEADERS: Record<string, string> = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': SENTCHAT_PAGE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
};
