import type { Feature } from '../app/features.ts';

/**
 * The chat bot. SENTchat (the built-in web chat) is always on. Slack is off until
 * SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN are set; the Slack stack (@slack/bolt's Web API client
 * and its dependencies, ~10 MB) is loaded only then. Teams likewise, only when its app
 * credentials are set.
 */
export const chatFeature: Feature = {
  name: 'chat',
  async register(ctx) {
    const closers: (() => Promise<void>)[] = [];
    const closeAll = async () => {
      for (const close of closers.reverse()) await close();
    };

    // SENTchat, the built-in web chat: always on. It is the engine's chat port (approval cards,
    // chat.notify) and makes SEV1 channels only while no other platform is configured (a
    // platform added here joins the `primary` condition).
    const { sentchatChat } = await import('./sentchat/sentchat-chat.ts');
    closers.push(await sentchatChat.register(ctx, { primary: !ctx.config.slack && !ctx.config.teams }));

    const slack = ctx.config.slack;
    if (!slack) {
      if (ctx.role === 'all') ctx.hint('Slack        off (set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN; see docs/CHAT.md)');
    } else {
      const { slackChat } = await import('./slack-chat.ts');
      closers.push(await slackChat.register(ctx, slack));
    }

    // Microsoft Teams: off until TEAMS_CLIENT_ID, TEAMS_CLIENT_SECRET and TEAMS_TENANT_ID are set;
    // the Teams SDK (@microsoft/teams.*, axios, jsonwebtoken) is loaded only then.
    const teams = ctx.config.teams;
    if (!teams) {
      if (ctx.role === 'all') ctx.hint('Teams        off (set TEAMS_CLIENT_ID, TEAMS_CLIENT_SECRET and TEAMS_TENANT_ID; see docs/CHAT.md)');
    } else {
      const { teamsChat } = await import('./teams/teams-chat.ts');
      closers.push(await teamsChat.register(ctx, teams));
    }
    return closeAll;
  },
};
