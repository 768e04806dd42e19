import { describe, expect, it } from 'vitest';
import { commandText, teamsActivity, teamsDeliveryId, toTeamsInbound } from '../../../src/bot/teams/teams-activity.ts';
import { fixtureJson } from '../../helpers/fixtures.ts';

const NOW = new Date('2026-11-21T09:04:00Z');

function fixture(name: string) {
  return teamsActivity.parse(fixtureJson(`teams/${name}`));
}

describe('Teams activities to invocations', () => {
  it('turns the messageBack fixture, as Teams sent it, into a text command of its sender in its tenant', () => {
    const a = fixture('msteams_docs_messageBack_inbound_message.json');
    const t = toTeamsInbound(a, NOW);
    expect(t.kind).toBe('command');
    if (t.kind !== 'command') return;
    expect(t.job.inbound).toMatchObject({
      platform: 'teams',
      // No aadObjectId in the fixture: the Bot Framework id stands in.
      user: { platform: 'teams', workspace: 'bec8e231-67ad-484e-87f4-3e5438390a77', userId: '29:102jd210jd010icsoaeclaejcoa9ue09u', displayName: 'John Smith' },
      channel: { id: '19:malejcou081i20ojmlcau0@thread.skype' },
      text: 'User just clicked the MessageBack button',
      receivedAt: NOW.toISOString(),
    });
    // The answer goes into the thread the message is in, on the connector it came from.
    expect(t.job.reply).toEqual({
      serviceUrl: 'https://smba.trafficmanager.net/amer-client-ss.msg/',
      conversationId: '19:malejcou081i20ojmlcau0@thread.skype;messageid=1498171086622',
      replyToId: 'f:5261769396935243054',
    });
    expect(t.job.deliveryId).toMatch(/^[0-9a-f]{40}$/);
  });

  it('prefers the Entra object id to the Bot Framework id', () => {
    const a = fixture('msteams_docs_messageBack_inbound_message.json');
    const t = toTeamsInbound({ ...a, from: { ...a.from!, aadObjectId: '7f8e9d0c-1b2a-4354-6758-9a0b1c2d3e4f' } }, NOW);
    expect(t.kind === 'command' && t.job.inbound.user.userId).toBe('7f8e9d0c-1b2a-4354-6758-9a0b1c2d3e4f');
  });

  it('ignores the legacy card invoke fixture (no name): only adaptiveCard/action clicks are buttons', () => {
    expect(toTeamsInbound(fixture('msteams_docs_invoke_cardaction_inbound.json'), NOW)).toEqual({ kind: 'ignored', what: 'invoke (unnamed)' });
  });

  it('turns an Action.Execute click into an action carrying only the verb and the value', () => {
    const a = fixture('msteams_docs_invoke_cardaction_inbound.json');
    const t = toTeamsInbound({ ...a, name: 'adaptiveCard/action', value: { action: { type: 'Action.Execute', verb: 'approval.approve', data: { value: 'a1' } }, trigger: 'manual' } }, NOW);
    expect(t.kind).toBe('action');
    if (t.kind !== 'action') return;
    expect(t.inbound.action).toEqual({
      actionId: 'approval.approve',
      value: 'a1',
      messageRef: { platform: 'teams', channelId: a.conversation!.id, messageId: '1575667808184' },
    });
    expect(t.inbound.user).toMatchObject({ workspace: '72f988bf-86f1-41af-91ab-2d7cd011db47' });
    expect(t.inbound.channel.id).toBe('19:dc5ba12695be4eb7bf457cad6b4709eb@thread.skype');
  });

  it('ignores activities from other Bot Framework channels and ones it cannot place', () => {
    const a = fixture('msteams_docs_messageBack_inbound_message.json');
    expect(toTeamsInbound({ ...a, channelId: 'webchat' }, NOW).kind).toBe('ignored');
    expect(toTeamsInbound({ ...a, channelData: {} }, NOW).kind).toBe('ignored');
    expect(toTeamsInbound({ ...a, type: 'conversationUpdate' }, NOW)).toEqual({ kind: 'ignored', what: 'conversationUpdate' });
  });

  it('keys deliveries by conversation and activity id: channel message ids repeat across conversations', () => {
    const a = { id: '1575667808184', conversation: { id: '19:a@thread.tacv2' } };
    expect(teamsDeliveryId(a)).toBe(teamsDeliveryId({ ...a }));
    expect(teamsDeliveryId(a)).not.toBe(teamsDeliveryId({ ...a, conversation: { id: '19:b@thread.tacv2' } }));
  });
});

describe('commandText', () => {
  const recipient = { id: '28:bot' };
  it('strips the mention of the bot and a leading reflex', () => {
    expect(commandText({ text: '<at>SENTreflex</at> enrich 198.51.100.7', entities: [{ type: 'mention', text: '<at>SENTreflex</at>', mentioned: { id: '28:bot' } }], recipient })).toBe('enrich 198.51.100.7');
    expect(commandText({ text: 'reflex incident list', recipient })).toBe('incident list');
    expect(commandText({ text: '/reflex help', recipient })).toBe('help');
    expect(commandText({ text: 'whoami', recipient })).toBe('whoami');
  });

  it('turns other mentions into @ids and decodes what Teams escaped', () => {
    const entities = [
      { type: 'mention', text: '<at>SENTreflex</at>', mentioned: { id: '28:bot' } },
      { type: 'mention', text: '<at>Ann</at>', mentioned: { id: '29:ann', aadObjectId: '3d4e5f60-7182-4394-a5b6-c7d8e9f0a1b2' } },
    ];
    expect(commandText({ text: '<at>SENTreflex</at> role grant <at>Ann</at> analyst', entities, recipient })).toBe('role grant  @3d4e5f60-7182-4394-a5b6-c7d8e9f0a1b2  analyst');
    expect(commandText({ text: '<p>note 1a2b3c4d R&amp;D says &quot;wait&quot;&nbsp;now</p>', recipient })).toBe('note 1a2b3c4d R&D says "wait" now');
  });
});
