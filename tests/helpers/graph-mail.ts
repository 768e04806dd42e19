/**
 * Microsoft Graph mail answers for the mailbox tests. No Graph mail payload is among
 * ../shared/fixtures, so these follow the response examples of Microsoft's v1.0 reference pages,
 * named at each builder; only the ids and addresses are ours.
 */

export const GRAPH_HOST = 'https://graph.microsoft.com';

/** "List users" (learn.microsoft.com/graph/api/user-list), with `$select=id,mail,userPrincipalName`. */
export function usersPage(users: { id: string; mail: string | null; userPrincipalName: string }[], nextSkipToken?: string): Record<string, unknown> {
  return {
    '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#users(id,mail,userPrincipalName)',
    ...(nextSkipToken
      ? { '@odata.nextLink': `${GRAPH_HOST}/v1.0/users?$select=id,mail,userPrincipalName&$top=999&$skiptoken=${nextSkipToken}` }
      : {}),
    value: users,
  };
}

/** "List messages" (learn.microsoft.com/graph/api/user-list-messages), with `$select=id,parentFolderId`. */
export function messagesPage(user: string, messages: { id: string; parentFolderId: string }[]): Record<string, unknown> {
  return {
    '@odata.context': `https://graph.microsoft.com/v1.0/$metadata#users('${user}')/messages(id,parentFolderId)`,
    value: messages.map((m) => ({ '@odata.etag': 'W/"CQAAABYAAAC4ofQHEIqCSbQPot+3xxe1AAAMrqbm"', ...m })),
  };
}

/** "Get mailFolder" (learn.microsoft.com/graph/api/mailfolder-get), with `$select=id`. */
export function folder(user: string, id: string): Record<string, unknown> {
  return { '@odata.context': `https://graph.microsoft.com/v1.0/$metadata#users('${user}')/mailFolders(id)/$entity`, id };
}

/** "message: move" (learn.microsoft.com/graph/api/message-move): 201 with the moved message (a new id). */
export function moved(id: string, parentFolderId: string): Record<string, unknown> {
  return {
    '@odata.context': "https://graph.microsoft.com/v1.0/$metadata#users('ana%40contoso.example')/messages/$entity",
    id: `${id}-moved`,
    parentFolderId,
    subject: 'Urgent: verify your account',
    isRead: false,
  };
}

/** Graph's error envelope (learn.microsoft.com/graph/errors). */
export function graphError(code: string, message: string): Record<string, unknown> {
  return { error: { code, message, innerError: { date: '2025-03-04T09:20:00', 'request-id': '0f7e3b2a-1a2b-4c3d-8e9f-0a1b2c3d4e5f', 'client-request-id': '0f7e3b2a-1a2b-4c3d-8e9f-0a1b2c3d4e5f' } } };
}

/** What a mailbox without Exchange Online answers (microsoftgraph/microsoft-graph-docs issue #17826 and others). */
export const NO_MAILBOX = graphError('MailboxNotEnabledForRESTAPI', 'The mailbox is either inactive, soft-deleted, or is hosted on-premise.');

/** Graph's throttling answer for Outlook (learn.microsoft.com/graph/throttling: 429 with Retry-After). */
export const THROTTLED = graphError('ApplicationThrottled', 'Application is over its MailboxConcurrency limit.');

/**
 * A reported phishing message as `GET …/messages/{id}/$value` returns it
 * (learn.microsoft.com/graph/outlook-get-mime-message): the MIME text. The origin hop is the
 * AbuseIPDB fixture's address, so intel scores it 100.
 */
export function phishMime(messageId: string, originIp = '198.51.100.100'): string {
  return [
    'Received: from mx.contoso.example (mx.contoso.example [10.0.0.5])',
    '\tby mail.contoso.example with ESMTPS id abc; Tue, 4 Mar 2025 09:12:01 +0000',
    `Received: from mailer.evil.example (mailer.evil.example [${originIp}])`,
    '\tby mx.contoso.example with ESMTP id def for <ana@contoso.example>; Tue, 4 Mar 2025 09:12:00 +0000',
    'Authentication-Results: mx.contoso.example; spf=fail smtp.mailfrom=evil.example; dkim=none; dmarc=fail header.from=bank.example',
    'Return-Path: <bounce@evil.example>',
    'From: "Bank Security" <security@bank.example>',
    'Reply-To: <help@evil.example>',
    'To: Ana <ana@contoso.example>',
    'Subject: Urgent: verify your account',
    `Message-ID: ${messageId}`,
    'Date: Tue, 4 Mar 2025 09:11:58 +0000',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Your account is locked. Verify at https://login.evil.example/verify?u=ana today.',
    '',
  ].join('\r\n');
}
