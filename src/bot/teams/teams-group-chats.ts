import { ReflexError } from '../../errors.ts';
import { graphError, withPermissionHint, type TeamsGraph } from './teams-graph.ts';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface TeamsGroupChatsOptions {
  graph: TeamsGraph;
  /** The Teams app manifest's `id` (SENTreflex's is the bot's app id): the catalog's `externalId`. */
  manifestId: string;
  /** `TEAMS_APP_CATALOG_ID`: the app's id in the organisation's catalog; unset, it is looked up once. */
  catalogId?: string;
}

/** A group chat as SENTreflex uses it: its Graph id (also its Bot Connector conversation id) and topic. */
export interface TeamsGroupChat {
  chatId: string;
  topic: string;
}

/**
 * Teams group chats through Microsoft Graph with the app-only token, for SEV1 rooms in tenants
 * without an incident team. One Graph call per method, no retries of its own (the SEV1 job
 * retries, honouring `Retry-After`); a 403 leaves as an error naming the application permission
 * the app registration lacks.
 *
 * - `create`: `POST /chats` (`Chat.Create`), chatType `group`, the members (Entra object ids,
 *   role owner) given at creation as Graph requires. Graph has no client-supplied id for chats
 *   and makes a new group chat on every call, so callers record the id at once.
 * - `findByTopic`: `GET /users/{id}/chats?$filter=topic eq '…'` (`Chat.ReadBasic.All`): a chat an
 *   earlier attempt made and died before recording.
 * - `installApp`: `POST /chats/{id}/installedApps` (`TeamsAppInstallation.ReadWriteSelfForChat.All`):
 *   the bot can only post into a chat its app is installed in.
 * - `pin`: `POST /chats/{id}/pinnedMessages` (`Chat.ReadWrite.All`); chats have pins, channels do not.
 *
 * @example
 * const chat = await chats.create('inc-20261121-1a2b3c4d-ransomware', [responderOid, reporterOid]);
 * await chats.installApp(chat.chatId);
 */
export class TeamsGroupChats {
  private catalogId: string | undefined;

  constructor(private readonly opts: TeamsGroupChatsOptions) {
    this.catalogId = opts.catalogId;
  }

  async create(topic: string, userIds: readonly string[]): Promise<TeamsGroupChat> {
    const { graph } = this.opts;
    const members = [...new Set(userIds)];
    if (members.length === 0 || members.some((u) => !GUID.test(u))) {
      throw new ReflexError('input.invalid', 'a Teams group chat needs members given as Entra object ids', { retryable: false });
    }
    let body: { id?: string; topic?: string | null } | undefined;
    try {
      ({ body } = await graph.call<{ id?: string; topic?: string | null }>('POST', '/v1.0/chats', {
        chatType: 'group',
        topic,
        members: members.map((id) => ({
          '@odata.type': '#microsoft.graph.aadUserConversationMember',
          roles: ['owner'],
          'user@odata.bind': `${graph.baseUrl}/v1.0/users('${id}')`,
        })),
      }));
    } catch (err) {
      throw withPermissionHint(err, 'Creating the SEV1 group chat', 'Chat.Create');
    }
    if (!body?.id) throw new ReflexError('upstream.rejected', 'Graph created no chat', { retryable: false });
    return { chatId: body.id, topic: body.topic ?? topic };
  }

  /** A group chat of `memberId` whose topic is exactly `topic`, if Graph lists one. */
  async findByTopic(topic: string, memberId: string): Promise<TeamsGroupChat | undefined> {
    if (!GUID.test(memberId)) return undefined;
    const filter = encodeURIComponent(`topic eq '${topic.replace(/'/g, "''")}'`);
    let body: { value?: { id?: string; topic?: string | null; chatType?: string }[] } | undefined;
    try {
      ({ body } = await this.opts.graph.call<typeof body>('GET', `/v1.0/users/${memberId}/chats?$filter=${filter}`));
    } catch (err) {
      throw withPermissionHint(err, 'Looking for a SEV1 group chat made by an earlier attempt', 'Chat.ReadBasic.All');
    }
    const hit = (body?.value ?? []).find((c) => c.id && c.topic === topic && c.chatType === 'group');
    return hit ? { chatId: hit.id!, topic } : undefined;
  }

  /** Installs the SENTreflex app (its bot) into the chat; already installed counts as done. */
  async installApp(chatId: string): Promise<void> {
    const { graph } = this.opts;
    const appId = await this.appCatalogId();
    try {
      await graph.call('POST', `/v1.0/chats/${encodeURIComponent(chatId)}/installedApps`, { 'teamsApp@odata.bind': `${graph.baseUrl}/v1.0/appCatalogs/teamsApps/${appId}` });
    } catch (err) {
      if (graphError(err)?.status === 409) return;
      throw withPermissionHint(err, 'Adding the SENTreflex app to the SEV1 group chat', 'TeamsAppInstallation.ReadWriteSelfForChat.All');
    }
  }

  /** Pins a message (its Bot Connector activity id is the chat message id); already pinned counts as done. */
  async pin(chatId: string, messageId: string): Promise<void> {
    const { graph } = this.opts;
    try {
      await graph.call('POST', `/v1.0/chats/${encodeURIComponent(chatId)}/pinnedMessages`, { 'message@odata.bind': `${graph.baseUrl}/v1.0/chats/${chatId}/messages/${messageId}` });
    } catch (err) {
      if (graphError(err)?.status === 409) return;
      throw withPermissionHint(err, 'Pinning the summary card in the SEV1 group chat', 'Chat.ReadWrite.All');
    }
  }

  /**
   * The app's id in the organisation's catalog: generated by Teams, not the manifest's `id`
   * (which the catalog keeps as `externalId`). Looked up once (`AppCatalog.Read.All`) unless
   * `TEAMS_APP_CATALOG_ID` says it.
   */
  private async appCatalogId(): Promise<string> {
    if (this.catalogId) return this.catalogId;
    const filter = encodeURIComponent(`externalId eq '${this.opts.manifestId}'`);
    let body: { value?: { id?: string; externalId?: string }[] } | undefined;
    try {
      ({ body } = await this.opts.graph.call<typeof body>('GET', `/v1.0/appCatalogs/teamsApps?$filter=${filter}`));
    } catch (err) {
      throw withPermissionHint(err, 'Finding the SENTreflex app in the Teams app catalog (or set TEAMS_APP_CATALOG_ID)', 'AppCatalog.Read.All');
    }
    const app = (body?.value ?? []).find((a) => a.id && a.externalId === this.opts.manifestId);
    if (!app?.id) {
      throw new ReflexError(
        'not_found',
        `the Teams app catalog has no app whose manifest id is ${this.opts.manifestId}: upload manifests/teams to the organisation's catalog (Teams admin center), or set TEAMS_APP_CATALOG_ID`,
        { retryable: false, safeMessage: 'The SENTreflex Teams app is not in the organisation’s app catalog.' },
      );
    }
    this.catalogId = app.id;
    return app.id;
  }
}
