import { cloudFromName } from '@microsoft/teams.api';
import type { TeamsConfig } from '../../app/config.ts';

/** Where the Teams bot talks to, resolved once from config and the Teams SDK's cloud table. */
export interface TeamsEndpoints {
  /** Bot Framework OpenID metadata: the issuer and the keys inbound requests are signed with. */
  openIdMetadataUrl: string;
  /** The `iss` inbound tokens must carry when the metadata does not say. */
  tokenIssuer: string;
  /** Client-credentials endpoint of the app's tenant (single-tenant bot). */
  tokenUrl: string;
  /** Scope of the token the Bot Connector accepts. */
  botScope: string;
  /** Scope and base of Microsoft Graph (SEV1 channels). */
  graphScope: string;
  graphUrl: string;
  /** Bot Connector base for conversations nobody wrote to us in first. */
  serviceUrl: string;
}

/**
 * The cloud's endpoints (`cloudFromName`: Public, USGov, USGovDoD, China) with the operator's
 * overrides. Tests point the OpenID metadata, token and Graph URLs at hosts they intercept.
 *
 * @example
 * teamsEndpoints(config.teams).tokenUrl // 'https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token'
 */
export function teamsEndpoints(c: TeamsConfig): TeamsEndpoints {
  const cloud = cloudFromName(c.cloud);
  return {
    openIdMetadataUrl: c.openIdMetadataUrl ?? cloud.openIdMetadataUrl,
    tokenIssuer: cloud.tokenIssuer,
    tokenUrl: c.tokenUrl ?? `${cloud.loginEndpoint}/${c.tenantId}/oauth2/v2.0/token`,
    botScope: cloud.botScope,
    graphScope: cloud.graphScope,
    graphUrl: (c.graphUrl ?? cloud.graphScope.replace(/\/\.default$/, '')).replace(/\/+$/, ''),
    serviceUrl: c.serviceUrl,
  };
}
