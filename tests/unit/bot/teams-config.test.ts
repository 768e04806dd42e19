import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/app/config.ts';
import { teamsEndpoints } from '../../../src/bot/teams/teams-endpoints.ts';
import { ReflexError } from '../../../src/errors.ts';

const ID = '5f0b2a77-3c1e-4d2a-9b1f-0d6c1e2f3a4b';
const TENANT = '0e8d1c2b-3a4f-4b5c-8d6e-7f8091a2b3c4';

function configError(env: Record<string, string>): ReflexError {
  try {
    loadConfig(env);
  } catch (err) {
    return err as ReflexError;
  }
  throw new Error('expected loadConfig to throw');
}

describe('Teams configuration', () => {
  it('is off without credentials', () => {
    expect(loadConfig({}).teams).toBeUndefined();
  });

  it('is on with all three, with the public cloud’s endpoints', () => {
    const c = loadConfig({ TEAMS_CLIENT_ID: ID, TEAMS_CLIENT_SECRET: 's3cret', TEAMS_TENANT_ID: TENANT }).teams!;
    expect(c).toMatchObject({ clientId: ID, clientSecret: 's3cret', tenantId: TENANT, cloud: 'Public', serviceUrl: 'https://smba.trafficmanager.net/teams/', incidentTeamId: undefined });
    expect(teamsEndpoints(c)).toEqual({
      openIdMetadataUrl: 'https://login.botframework.com/v1/.well-known/openidconfiguration',
      tokenIssuer: 'https://api.botframework.com',
      tokenUrl: `https://login.microsoftonline.com/${TENANT}/oauth2/v2.0/token`,
      botScope: 'https://api.botframework.com/.default',
      graphScope: 'https://graph.microsoft.com/.default',
      graphUrl: 'https://graph.microsoft.com',
      serviceUrl: 'https://smba.trafficmanager.net/teams/',
    });
  });

  it('reads the Teams SDK’s own names when the TEAMS_ ones are unset', () => {
    expect(loadConfig({ CLIENT_ID: ID, CLIENT_SECRET: 's3cret', TENANT_ID: TENANT }).teams).toMatchObject({ clientId: ID, tenantId: TENANT });
    expect(loadConfig({ TEAMS_CLIENT_ID: ID, CLIENT_ID: 'not-used', CLIENT_SECRET: 's', TENANT_ID: TENANT }).teams?.clientId).toBe(ID);
  });

  it.each([
    [{ TEAMS_CLIENT_ID: ID }, ['TEAMS_CLIENT_SECRET', 'TEAMS_TENANT_ID']],
    [{ TEAMS_CLIENT_ID: ID, TEAMS_CLIENT_SECRET: 's' }, ['TEAMS_TENANT_ID']],
    [{ CLIENT_SECRET: 's', TENANT_ID: TENANT }, ['TEAMS_CLIENT_ID']],
    [{ TEAMS_CLIENT_ID: 'bot', TEAMS_CLIENT_SECRET: 's', TEAMS_TENANT_ID: TENANT }, ['TEAMS_CLIENT_ID']],
    [{ CLIENT_ID: 'bot', CLIENT_SECRET: 's', TENANT_ID: TENANT }, ['CLIENT_ID']],
    [{ TEAMS_CLIENT_ID: ID, TEAMS_CLIENT_SECRET: 's', TEAMS_TENANT_ID: TENANT, TEAMS_OPENID_METADATA_URL: 'http://login.example/x' }, ['TEAMS_OPENID_METADATA_URL']],
    [{ TEAMS_CLIENT_ID: ID, TEAMS_CLIENT_SECRET: 's', TEAMS_TENANT_ID: TENANT, TEAMS_CLOUD: 'Mars' }, ['TEAMS_CLOUD']],
    [{ TEAMS_CLIENT_ID: ID, TEAMS_CLIENT_SECRET: 's', TEAMS_TENANT_ID: TENANT, TEAMS_INCIDENT_MODE: 'chat' }, ['TEAMS_INCIDENT_MODE']],
    [{ TEAMS_CLIENT_ID: ID, TEAMS_CLIENT_SECRET: 's', TEAMS_TENANT_ID: TENANT, TEAMS_INCIDENT_MODE: 'channel' }, ['TEAMS_INCIDENT_TEAM_ID']],
    [{ TEAMS_CLIENT_ID: ID, TEAMS_CLIENT_SECRET: 's', TEAMS_TENANT_ID: TENANT, TEAMS_APP_CATALOG_ID: 'sentreflex' }, ['TEAMS_APP_CATALOG_ID']],
  ])('names what is missing or wrong: %o', (env, variables) => {
    const err = configError(env);
    expect(err).toBeInstanceOf(ReflexError);
    expect(err.code).toBe('config.invalid');
    expect(err.details?.variables).toEqual(variables);
    for (const v of variables) expect(err.message).toContain(v);
    expect(err.message).not.toContain('s3cret');
  });

  it('chooses the SEV1 room: a channel with a team, a group chat without, or what TEAMS_INCIDENT_MODE says', () => {
    const creds = { TEAMS_CLIENT_ID: ID, TEAMS_CLIENT_SECRET: 's', TEAMS_TENANT_ID: TENANT };
    const team = '7a1c2d3e-4f50-4617-8a9b-0c1d2e3f4a5b';
    expect(loadConfig(creds).teams).toMatchObject({ incidentMode: 'groupchat', incidentTeamId: undefined, appCatalogId: undefined });
    expect(loadConfig({ ...creds, TEAMS_INCIDENT_TEAM_ID: team }).teams).toMatchObject({ incidentMode: 'channel', incidentTeamId: team });
    expect(loadConfig({ ...creds, TEAMS_INCIDENT_TEAM_ID: team, TEAMS_INCIDENT_MODE: 'groupchat' }).teams?.incidentMode).toBe('groupchat');
    expect(loadConfig({ ...creds, TEAMS_INCIDENT_MODE: 'off' }).teams?.incidentMode).toBe('off');
    expect(loadConfig({ ...creds, TEAMS_APP_CATALOG_ID: '22f73bbe-f67a-4dea-bd54-54cac718cb2b' }).teams?.appCatalogId).toBe('22f73bbe-f67a-4dea-bd54-54cac718cb2b');
    expect(configError({ ...creds, TEAMS_INCIDENT_MODE: 'chat' }).message).toContain('TEAMS_INCIDENT_MODE: must be channel, groupchat or off');
    expect(configError({ ...creds, TEAMS_INCIDENT_MODE: 'channel' }).message).toContain('TEAMS_INCIDENT_TEAM_ID: required when TEAMS_INCIDENT_MODE=channel');
  });

  it('takes overrides for sovereign clouds and tests', () => {
    const c = loadConfig({
      TEAMS_CLIENT_ID: ID,
      TEAMS_CLIENT_SECRET: 's',
      TEAMS_TENANT_ID: TENANT,
      TEAMS_CLOUD: 'USGov',
      TEAMS_GRAPH_URL: 'https://graph.example/',
      TEAMS_INCIDENT_TEAM_ID: '7a1c2d3e-4f50-4617-8a9b-0c1d2e3f4a5b',
    }).teams!;
    const e = teamsEndpoints(c);
    expect(e.tokenUrl).toBe(`https://login.microsoftonline.us/${TENANT}/oauth2/v2.0/token`);
    expect(e.botScope).toBe('https://api.botframework.us/.default');
    expect(e.graphUrl).toBe('https://graph.example');
    expect(c.incidentTeamId).toBe('7a1c2d3e-4f50-4617-8a9b-0c1d2e3f4a5b');
  });
});
