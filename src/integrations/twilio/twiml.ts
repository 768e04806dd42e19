/**
 * TwiML for a spoken alert. Everything read out comes from alerts and playbooks, i.e. from
 * attackers as much as from us: it is always escaped, never concatenated raw into XML. A message
 * holding `</Say><Dial>+1900…</Dial>` must be read out, not dialled.
 */

/** Twilio refuses a `Twiml` parameter longer than this. */
export const TWIML_MAX = 4000;

/**
 * Escapes text for XML element content and attribute values, and drops the characters XML 1.0
 * cannot carry at all (C0 controls other than tab/newline/CR, lone surrogates, U+FFFE/U+FFFF):
 * escaping them would still be malformed XML.
 *
 * @example
 * escapeXml('5 < 6 & "x"') // '5 &lt; 6 &amp; &quot;x&quot;'
 */
export function escapeXml(text: string): string {
  return stripInvalidXmlChars(text)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

export function stripInvalidXmlChars(text: string): string {
  // The XML 1.0 Char production (https://www.w3.org/TR/xml/#charsets).
  return text.replace(/[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, '');
}

export interface CallTwimlOptions {
  /** Where a keypress is posted; adds "press 1 to acknowledge". */
  acknowledgeUrl?: string;
  /** `<Say voice>`; default Twilio's. */
  voice?: string;
  /** `<Say language>`, e.g. `en-GB`. */
  language?: string;
}

/**
 * The TwiML for an alert call: the message, a pause, the message again (people miss the first
 * words of a 3 AM call), then the acknowledgement prompt when there is a URL for it. The message
 * is cut (with an ellipsis) so the document stays within Twilio's 4000 characters.
 *
 * @example
 * buildCallTwiml('SEV1 <web-01>')
 * // '<?xml version="1.0" encoding="UTF-8"?><Response><Say>SEV1 &lt;web-01&gt;</Say><Pause length="1"/><Say>SEV1 &lt;web-01&gt;</Say></Response>'
 */
export function buildCallTwiml(message: string, opts: CallTwimlOptions = {}): string {
  const sayAttrs =
    (opts.voice ? ` voice="${escapeXml(opts.voice)}"` : '') + (opts.language ? ` language="${escapeXml(opts.language)}"` : '');
  const render = (m: string): string => {
    const say = `<Say${sayAttrs}>${escapeXml(m)}</Say>`;
    const gather = opts.acknowledgeUrl
      ? `<Gather numDigits="1" method="POST" action="${escapeXml(opts.acknowledgeUrl)}"><Say${sayAttrs}>Press 1 to acknowledge.</Say></Gather>`
      : '';
    return `<?xml version="1.0" encoding="UTF-8"?><Response>${say}<Pause length="1"/>${say}${gather}</Response>`;
  };
  const clean = stripInvalidXmlChars(message).trim();
  let twiml = render(clean);
  if (twiml.length <= TWIML_MAX) return twiml;
  // Cut on the raw text (never inside an entity), by what the escaped form costs.
  let keep = clean.length;
  while (keep > 0 && twiml.length > TWIML_MAX) {
    keep -= Math.max(1, Math.ceil((twiml.length - TWIML_MAX) / 2));
    // A surrogate pair cut in half is dropped by escapeXml.
    twiml = render(`${clean.slice(0, Math.max(0, keep))}…`);
  }
  return twiml;
}

export interface AnswerTwimlOptions {
  voice?: string;
  language?: string;
  /** Asks for the keypress again, posting it to this URL (a wrong key, the caller gets another go). */
  gatherUrl?: string;
}

/**
 * The TwiML answering a keypress: what happened, optionally the prompt again, then hang up.
 * Always escaped like the call itself.
 *
 * @example
 * buildAnswerTwiml('Acknowledged. Goodbye.')
 * // '<?xml version="1.0" encoding="UTF-8"?><Response><Say>Acknowledged. Goodbye.</Say><Hangup/></Response>'
 */
export function buildAnswerTwiml(text: string, opts: AnswerTwimlOptions = {}): string {
  const sayAttrs =
    (opts.voice ? ` voice="${escapeXml(opts.voice)}"` : '') + (opts.language ? ` language="${escapeXml(opts.language)}"` : '');
  const gather = opts.gatherUrl
    ? `<Gather numDigits="1" method="POST" action="${escapeXml(opts.gatherUrl)}"><Say${sayAttrs}>Press 1 to acknowledge.</Say></Gather>`
    : '';
  return `<?xml version="1.0" encoding="UTF-8"?><Response><Say${sayAttrs}>${escapeXml(text)}</Say>${gather}<Hangup/></Response>`;
}
