/** The SENTchat page's stylesheet (inline, hashed into the page's CSP). Narrow screens: the channel list becomes a drawer. */
export const SENTCHAT_STYLE = String.raw`
:root {
  --bg: #f6f7f9; --panel: #ffffff; --ink: #1d2330; --muted: #667085; --line: #e3e6ec;
  --side: #161b26; --side-ink: #c9cfdb; --side-muted: #8891a5; --side-active: #2b61d1;
  --accent: #2b61d1; --accent-ink: #ffffff; --danger: #c4320a; --danger-bg: #fff4ed;
  --ok: #067647; --warn-bg: #fffaeb; --warn-ink: #93370d; --code: #eef1f6;
  --radius: 10px; --shadow: 0 1px 2px rgba(16, 24, 40, .06), 0 1px 3px rgba(16, 24, 40, .1);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--ink); background: var(--bg);
}
* { box-sizing: border-box; }
html, body { margin: 0; height: 100%; }
body { overflow: hidden; }
[hidden] { display: none !important; }
button, input, textarea { font: inherit; color: inherit; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .88em; background: var(--code); padding: .1em .35em; border-radius: 4px; }
pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .85em; background: var(--code); padding: .6em .8em; border-radius: 6px; overflow-x: auto; white-space: pre-wrap; margin: .3em 0; }
.muted { color: var(--muted); }
.button, button.primary, button.ghost, button.danger, button.secondary {
  display: inline-flex; align-items: center; justify-content: center; gap: .4em; min-height: 36px; padding: 0 14px;
  border-radius: 8px; border: 1px solid var(--line); background: var(--panel); cursor: pointer; text-decoration: none; font-weight: 600; font-size: .92em; color: var(--ink);
}
button.primary, .button.primary { background: var(--accent); border-color: var(--accent); color: var(--accent-ink); }
button.danger { color: var(--danger); border-color: #f4c7b8; }
button.ghost { background: transparent; border-color: transparent; color: inherit; }
button:disabled { opacity: .55; cursor: default; }
button:focus-visible, a:focus-visible, input:focus-visible, textarea:focus-visible { outline: 3px solid #8fb0f0; outline-offset: 1px; }

/* Sign-in and "not yet" screens */
.screen { height: 100%; display: grid; place-items: center; padding: 24px 16px; overflow: auto; background: linear-gradient(160deg, #161b26 0%, #1f2a44 100%); }
.signin-card { width: 100%; max-width: 420px; background: var(--panel); border-radius: 14px; padding: 28px 26px; box-shadow: 0 20px 50px rgba(0, 0, 0, .35); }
.signin-card h1 { font-size: 1.35em; margin: .6em 0 .3em; }
.signin-card p { margin: .4em 0 1em; }
.signin-card label { display: block; font-weight: 600; margin: .8em 0 .3em; }
.signin-card input { width: 100%; min-height: 44px; padding: 0 12px; border: 1px solid var(--line); border-radius: 8px; background: #fff; }
.signin-card button, .signin-card .button { width: 100%; min-height: 44px; margin-top: 1em; }
.brand { display: flex; align-items: center; gap: .45em; font-weight: 800; letter-spacing: .01em; }
.logo { display: inline-grid; place-items: center; width: 28px; height: 28px; border-radius: 7px; background: var(--accent); color: #fff; font-size: 15px; }
.or { text-align: center; color: var(--muted); margin-top: 1em; font-size: .9em; }
.error { color: var(--danger); background: var(--danger-bg); border-radius: 8px; padding: .6em .8em; margin: .8em 0 0; }
.identity { word-break: break-all; }

/* Chat layout */
#chat { height: 100%; display: flex; flex-direction: column; }
.topbar { display: flex; align-items: center; gap: 12px; height: 52px; padding: 0 14px; background: var(--side); color: #fff; flex: none; border-bottom: 1px solid #0c0f16; }
.topbar .brand { color: #fff; }
.topbar .me { margin-left: auto; display: flex; align-items: center; gap: 10px; min-width: 0; font-size: .9em; }
.topbar .me .who { display: flex; flex-direction: column; line-height: 1.15; text-align: right; min-width: 0; }
.topbar .me .who span { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.topbar .me .who .muted { color: var(--side-muted); font-size: .85em; }
.topbar button.ghost { color: #fff; border-color: #3a4358; }
#menu { display: none; background: transparent; border: 0; color: #fff; font-size: 22px; width: 40px; height: 40px; border-radius: 8px; cursor: pointer; }
.conn { font-size: .8em; padding: 3px 10px; border-radius: 999px; background: #3a2e0b; color: #fcd34d; }
.conn.live { background: #0b3a26; color: #6ee7b7; }
.layout { flex: 1; display: flex; min-height: 0; }
#sidebar { width: 260px; flex: none; background: var(--side); color: var(--side-ink); overflow-y: auto; padding: 12px 8px 24px; }
#sidebar h2 { font-size: .72em; text-transform: uppercase; letter-spacing: .08em; color: var(--side-muted); margin: 16px 10px 6px; }
#sidebar ul { list-style: none; margin: 0; padding: 0; }
#sidebar li button { width: 100%; display: flex; align-items: center; gap: 8px; border: 0; background: transparent; color: var(--side-ink); text-align: left; padding: 7px 10px; border-radius: 7px; cursor: pointer; min-height: 36px; }
#sidebar li button:hover { background: #222a3b; }
#sidebar li button[aria-current="true"] { background: var(--side-active); color: #fff; }
#sidebar li button .name { flex: 1; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
#sidebar li button.unread .name { font-weight: 700; color: #fff; }
#sidebar .dot { width: 8px; height: 8px; border-radius: 50%; background: #f04438; flex: none; }
#sidebar .empty { color: var(--side-muted); font-size: .85em; padding: 2px 10px; }
.kind { width: 1.1em; text-align: center; opacity: .8; flex: none; }
main { flex: 1; display: flex; flex-direction: column; min-width: 0; background: var(--panel); }
.channel-head { padding: 12px 20px; border-bottom: 1px solid var(--line); flex: none; }
.channel-head h1 { font-size: 1.1em; margin: 0; }
.channel-head p { margin: 2px 0 0; color: var(--muted); font-size: .88em; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.banner { margin: 10px 20px 0; padding: 8px 12px; border-radius: 8px; background: var(--danger-bg); color: var(--danger); display: flex; gap: 10px; align-items: flex-start; }
.banner span { flex: 1; }
.banner button { background: transparent; border: 0; color: inherit; cursor: pointer; font-size: 1.1em; }
.messages { flex: 1; overflow-y: auto; padding: 12px 20px 8px; }
.older { display: flex; justify-content: center; margin: 4px 0 12px; }
.empty-state { text-align: center; color: var(--muted); margin: 12vh auto; max-width: 360px; }
.empty-state .big { font-size: 2.2em; }
.empty-state strong { color: var(--ink); display: block; margin: .3em 0; }
.msg { display: grid; grid-template-columns: 36px 1fr; gap: 10px; padding: 8px 0; border-radius: 8px; }
.msg.reply { margin-left: 46px; grid-template-columns: 28px 1fr; }
.msg.reply .avatar { width: 28px; height: 28px; font-size: 12px; }
.msg.flash { animation: flash 1.6s ease-out; }
@keyframes flash { from { background: #fff3c4; } to { background: transparent; } }
.avatar { width: 36px; height: 36px; border-radius: 8px; display: grid; place-items: center; font-weight: 700; font-size: 14px; color: #fff; background: #7a5af8; }
.avatar.bot { background: var(--accent); }
.meta { display: flex; flex-wrap: wrap; align-items: baseline; gap: 6px; font-size: .9em; }
.meta .author { font-weight: 700; }
.meta .badge { font-size: .72em; font-weight: 700; text-transform: uppercase; background: #e8eefc; color: var(--accent); border-radius: 4px; padding: 0 5px; }
.meta time { color: var(--muted); font-size: .85em; }
.meta .note { color: var(--muted); font-size: .82em; font-style: italic; }
.replyto { font-size: .8em; color: var(--muted); margin-bottom: 2px; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; }
.msg.ephemeral .body { border-left: 3px dashed #b2bccc; padding-left: 10px; }
.card { border: 1px solid var(--line); border-left: 4px solid var(--accent); border-radius: var(--radius); padding: 10px 14px 12px; margin-top: 4px; box-shadow: var(--shadow); max-width: 680px; background: #fff; }
.card.danger { border-left-color: var(--danger); }
.card .title { font-weight: 700; margin-bottom: 4px; }
.fields { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 8px 18px; margin: 10px 0 4px; }
.fields div { min-width: 0; }
.fields dt { font-size: .75em; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); font-weight: 700; }
.fields dd { margin: 0; overflow-wrap: anywhere; white-space: pre-wrap; }
.buttons { display: flex; flex-wrap: wrap; gap: 8px; margin-top: 10px; }
.buttons button { min-height: 36px; }
.context { margin-top: 8px; font-size: .8em; color: var(--muted); }
.context div { overflow-wrap: anywhere; }
.working { color: var(--muted); font-size: .88em; padding: 4px 0 4px 46px; }
.working::after { content: ""; display: inline-block; width: 1.2em; text-align: left; animation: dots 1.2s steps(4) infinite; }
@keyframes dots { 0% { content: ""; } 25% { content: "."; } 50% { content: ".."; } 75% { content: "..."; } }
#composer { display: flex; gap: 8px; padding: 10px 20px 4px; flex: none; border-top: 1px solid var(--line); }
#composer textarea { flex: 1; resize: none; min-height: 44px; max-height: 180px; padding: 10px 12px; border: 1px solid var(--line); border-radius: 10px; background: #fff; }
#composer button { min-height: 44px; }
.hint { margin: 0; padding: 2px 20px 10px; font-size: .78em; color: var(--muted); flex: none; }
#scrim { position: fixed; inset: 52px 0 0 0; background: rgba(0, 0, 0, .45); z-index: 5; }

@media (max-width: 760px) {
  #menu { display: inline-grid; place-items: center; }
  .topbar { gap: 8px; padding: 0 8px; }
  .topbar .me .who { display: none; }
  #sidebar { position: fixed; top: 52px; bottom: 0; left: 0; width: min(82vw, 300px); z-index: 10; transform: translateX(-100%); transition: transform .18s ease-out; }
  #sidebar.open { transform: none; box-shadow: 8px 0 30px rgba(0, 0, 0, .35); }
  .messages { padding: 10px 12px 6px; }
  .channel-head { padding: 10px 12px; }
  .banner { margin: 8px 12px 0; }
  #composer { padding: 8px 10px 4px; }
  .hint { padding: 2px 12px 8px; }
  .hint .desk { display: none; }
  .fields { grid-template-columns: minmax(0, 1fr); }
  .msg.reply { margin-left: 20px; }
  .working { padding-left: 12px; }
  .buttons button { min-height: 44px; flex: 1 1 auto; }
}
`;
