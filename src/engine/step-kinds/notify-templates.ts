/**
 * Named notification templates (`notify: { template: phishing-confirmed }`). Subject and text are
 * templates over the run context, like any `${{ }}` string of a manifest.
 */
export interface NotifyTemplate {
  subject: string;
  text: string;
}

export const NOTIFY_TEMPLATES: Readonly<Record<string, NotifyTemplate>> = {
  'phishing-confirmed': {
    subject: 'The message you reported was phishing',
    text:
      'Thank you for reporting "${{ steps.parse.output.subject }}". It was malicious (score ${{ steps.verdict.output.score }}) ' +
      'and has been removed from every mailbox. You do not need to do anything else.',
  },
  'phishing-not-confirmed': {
    subject: 'The message you reported looks safe',
    text:
      'Thank you for reporting "${{ steps.parse.output.subject }}". Our checks found no sign of phishing ' +
      '(score ${{ steps.verdict.output.score }}). If it still looks wrong to you, reply to this e-mail.',
  },
};
