/**
 * Slack's message markup to the plain text commands parse: `<https://x.test|x.test>` becomes the
 * URL, `<mailto:a@b|a@b>` the address, `<@U123|ann>` becomes `@U123`, `<#C1|general>` `#general`,
 * `<!here>` `@here`, and the three escaped characters are unescaped.
 */
export function slackToPlain(text: string): string {
  return text
    .replace(/<@([A-Z0-9]+)(?:\|[^>]*)?>/g, '@$1')
    .replace(/<#([A-Z0-9]+)(?:\|([^>]*))?>/g, (_m, id: string, name?: string) => `#${name || id}`)
    .replace(/<!([a-z]+)(?:\^[^|>]*)?(?:\|[^>]*)?>/g, '@$1')
    .replace(/<mailto:([^|>]+)(?:\|[^>]*)?>/g, '$1')
    .replace(/<([a-z][a-z0-9+.-]*:[^|>]+)(?:\|[^>]*)?>/gi, '$1')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

/** An app_mention's text without the leading `<@BOT>` that addressed us. */
export function stripLeadingMention(text: string): string {
  return text.replace(/^\s*<@[A-Z0-9]+(?:\|[^>]*)?>[\s:,]*/, '');
}
