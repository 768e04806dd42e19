import type { Feature } from '../app/features.ts';

/**
 * The chat bot. Off until SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN are set; the Slack stack
 * (@slack/bolt's Web API client and its dependencies, ~10 MB) is loaded only then. Teams and
 * SENTchat join here later, each loaded only when configured.
 */
export const chatFeature: Feature = {
  name: 'chat',
  async register(ctx) {
    const slack = ctx.config.slack;
    if (!slack) {
      if (ctx.role === 'all') ctx.hint('Slack        off (set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN; see docs/CHAT.md)');
      return;
    }
    const { slackChat } = await import('./slack-chat.ts');
    return slackChat.register(ctx, slack);
  },
};
