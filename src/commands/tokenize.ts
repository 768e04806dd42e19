/**
 * Splits a typed command into tokens. Double quotes group words (`run isolate-host host="web 01"`);
 * typographic quotes count, since phones and macOS turn "" into “”. Single quotes do not group:
 * notes are full of apostrophes.
 *
 * `tails[i]` is the raw text from token i to the end of the line, so a free-text argument keeps
 * its quotes and spacing exactly as typed.
 *
 * @example
 * tokenize('note 1a2b3c4d He said "wait"') // tokens ['note','1a2b3c4d','He','said','wait'], tails[2] 'He said "wait"'
 */
export function tokenize(text: string): { tokens: string[]; tails: string[] } {
  const s = text.replace(/[\u201c\u201d\u201e\u201f]/g, '"').replace(/\u00a0/g, ' ');
  const tokens: string[] = [];
  const tails: string[] = [];
  let i = 0;
  while (i < s.length) {
    while (i < s.length && /\s/.test(s[i]!)) i++;
    if (i >= s.length) break;
    const start = i;
    let token = '';
    let quoted = false;
    while (i < s.length && (quoted || !/\s/.test(s[i]!))) {
      if (s[i] === '"') quoted = !quoted;
      else token += s[i];
      i++;
    }
    tokens.push(token);
    tails.push(s.slice(start).trim());
  }
  return { tokens, tails };
}
